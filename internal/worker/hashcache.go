package worker

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/snapbuild/snapbuild/internal/atomicfile"
)

// fileHashes remembers the sha256 of the regular files of one local
// directory, by path relative to it, together with the stat that vouches
// for it: device, inode, size, mode, mtime and ctime (both in
// nanoseconds). A file whose stat is unchanged is not read again; any
// write, truncation, chmod, chown, utimes or rename onto the path changes
// the ctime, which no call can set back, so an edit is never missed even
// where mtime and size are kept (touch -r, or an editor that restores the
// mtime). This is git's index check (and what BuildKit's contenthash
// relies on through fsutil's stat comparison, which has no ctime), made
// strict with the ctime.
//
// A file is remembered only when its ctime is more than a second older
// than the start of the read that hashed it: a write in the same clock
// tick as the stat cannot then go unnoticed (git's "racily clean" rule).
//
// The hashes of a directory are kept in the worker's contenthash/, one
// file per directory, loaded on first use and written back by
// Worker.Close with the entries the walks of this Worker met.
type fileHashes struct {
	path string // the file the hashes are kept in

	mu      sync.Mutex
	loaded  bool
	entries map[string]hashEntry
	seen    map[string]struct{} // paths met in this Worker's walks
	reads   int                 // files read (not known by their stat)
}

// hashEntry is one file's stat stamp and content digest.
type hashEntry struct {
	Dev, Ino     uint64
	Size         int64
	Mode         uint32
	Mtime, Ctime int64    // nanoseconds
	Sum          [32]byte // sha256 of the content
}

func stampOf(st *unix.Stat_t) hashEntry {
	return hashEntry{Dev: st.Dev, Ino: st.Ino, Size: st.Size, Mode: st.Mode,
		Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}
}

// hashesFor returns the content hashes of the local directory dir.
func (w *Worker) hashesFor(dir string) *fileHashes {
	w.mu.Lock()
	defer w.mu.Unlock()
	if h, ok := w.hashes[dir]; ok {
		return h
	}
	sum := sha256.Sum256([]byte(dir))
	h := &fileHashes{path: filepath.Join(w.dir, "contenthash", hex.EncodeToString(sum[:16]))}
	w.hashes[dir] = h
	return h
}

// hashBuf are the read buffers of file hashing, so that hashing many small
// files does not allocate one buffer per file.
var hashBuf = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// HashFile returns the sha256 of the file p, read through a pooled buffer.
func HashFile(p string) (digest.Digest, error) {
	sum, err := sumFile(p)
	if err != nil {
		return "", err
	}
	return digest.NewDigestFromBytes(digest.SHA256, sum[:]), nil
}

func sumFile(p string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(p)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	bp := hashBuf.Get().(*[]byte)
	defer hashBuf.Put(bp)
	hs := sha256.New()
	// Not f itself: *os.File's WriteTo would allocate a buffer per file.
	if _, err := io.CopyBuffer(hs, struct{ io.Reader }{f}, *bp); err != nil {
		return sum, err
	}
	hs.Sum(sum[:0])
	return sum, nil
}

// digest returns the sha256 of the regular file p, the path rel relative
// to the directory: the remembered one when p's stat is unchanged, else
// read and remembered. A nil h reads the file.
func (h *fileHashes) digest(p, rel string) (digest.Digest, error) {
	if h == nil {
		h = &fileHashes{loaded: true, entries: map[string]hashEntry{}}
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return "", &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	stamp := stampOf(&st)
	h.mu.Lock()
	if !h.loaded {
		h.load()
	}
	e, ok := h.entries[rel]
	h.mu.Unlock()
	if ok {
		sum := e.Sum
		e.Sum = [32]byte{}
		if e == stamp {
			h.remember(rel, stamp, sum)
			return digest.NewDigestFromBytes(digest.SHA256, sum[:]), nil
		}
	}
	start := time.Now()
	h.mu.Lock()
	h.reads++
	h.mu.Unlock()
	sum, err := sumFile(p)
	if err != nil {
		return "", err
	}
	if stamp.Ctime < start.Add(-time.Second).UnixNano() {
		h.remember(rel, stamp, sum)
	}
	return digest.NewDigestFromBytes(digest.SHA256, sum[:]), nil
}

func (h *fileHashes) remember(rel string, stamp hashEntry, sum [32]byte) {
	stamp.Sum = sum
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen == nil {
		h.seen = map[string]struct{}{}
	}
	h.seen[rel] = struct{}{}
	h.entries[rel] = stamp
}

// load reads the kept hashes; a missing or unreadable file is no hashes
// (it is a cache). h.mu is held.
//
// The file has one line per file: the path (Go-quoted), dev, ino, size,
// mode, mtime, ctime and the hex sha256, separated by spaces; compact to
// read and small in memory for contexts of many files.
func (h *fileHashes) load() {
	h.loaded = true
	h.entries = map[string]hashEntry{}
	f, err := os.Open(h.path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		q, err := strconv.QuotedPrefix(line)
		if err != nil {
			continue
		}
		rel, err := strconv.Unquote(q)
		if err != nil {
			continue
		}
		fs := strings.Fields(line[len(q):])
		if len(fs) != 7 {
			continue
		}
		var n [6]int64
		for i := range n {
			if n[i], err = strconv.ParseInt(fs[i], 10, 64); err != nil {
				break
			}
		}
		e := hashEntry{Dev: uint64(n[0]), Ino: uint64(n[1]), Size: n[2], Mode: uint32(n[3]), Mtime: n[4], Ctime: n[5]}
		if err == nil && hex.DecodedLen(len(fs[6])) == len(e.Sum) {
			if _, err := hex.Decode(e.Sum[:], []byte(fs[6])); err == nil {
				h.entries[rel] = e
			}
		}
	}
}

// save writes back the hashes this Worker's walks met (the others belong to
// files that are gone or were not selected, and are dropped).
func (h *fileHashes) save() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(h.path), 0o700); err != nil {
		return err
	}
	return atomicfile.Copy(h.path, 0o600, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		for rel := range h.seen {
			e := h.entries[rel]
			fmt.Fprintf(bw, "%s %d %d %d %d %d %d %x\n", strconv.Quote(rel), int64(e.Dev), int64(e.Ino), e.Size, e.Mode, e.Mtime, e.Ctime, e.Sum)
		}
		return bw.Flush()
	})
}

// saveHashes writes back every directory's hashes; errors are joined (a
// lost cache costs a re-read, nothing more).
func (w *Worker) saveHashes() error {
	w.mu.Lock()
	hs := make([]*fileHashes, 0, len(w.hashes))
	for _, h := range w.hashes {
		hs = append(hs, h)
	}
	w.mu.Unlock()
	var errs []error
	for _, h := range hs {
		errs = append(errs, h.save())
	}
	return errors.Join(errs...)
}
