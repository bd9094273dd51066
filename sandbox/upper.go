package sandbox

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/runc/libcontainer/configs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// entry is what identifies an unchanged file: a write, chmod, chown, link,
// or a replacement changes one of these. Timestamps have the kernel's clock
// tick as granularity (up to 10 ms), so a write right after the hooks could
// leave them equal: regular files up to hashLimit bytes also carry a hash
// of their content.
type entry struct {
	ino, rdev    uint64
	nlink        uint64
	mode         uint32
	uid, gid     uint32
	size         int64
	mtime, ctime unix.Timespec
	sum          [sha256.Size]byte
}

// hashLimit bounds the files whose content is hashed (ld.so.cache, config
// files and mount stubs are far below it).
const hashLimit = 4 << 20

// lstatEntry describes path; hash asks for the content hash of small
// regular files.
func lstatEntry(path string, hash bool) (entry, bool) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return entry{}, false
	}
	e := entry{ino: st.Ino, rdev: uint64(st.Rdev), nlink: uint64(st.Nlink), mode: st.Mode, uid: st.Uid, gid: st.Gid,
		size: st.Size, mtime: st.Mtim, ctime: st.Ctim}
	if hash && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size <= hashLimit {
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return entry{}, false
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return entry{}, false
		}
		h.Sum(e.sum[:0])
	}
	return e, true
}

// scanUpper lists every entry below upper (not upper itself), by path
// relative to it.
func scanUpper(upper string, hash bool) (map[string]entry, error) {
	out := map[string]entry{}
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == upper {
			return nil
		}
		rel, err := filepath.Rel(upper, p)
		if err != nil {
			return err
		}
		if e, ok := lstatEntry(p, hash); ok {
			out[filepath.ToSlash(rel)] = e
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scanning upper dir: %w", err)
	}
	return out, nil
}

// upperTracker tells the runtime's and the hooks' changes to the upper dir
// from the process's: it scans the upper dir before the container is
// created and once more when it is set up (the process waits at the exec
// fifo). The entries new or changed in between are the runtime's; those
// still unchanged when the process has exited belong to no layer.
type upperTracker struct {
	upper   string
	before  map[string]entry
	runtime map[string]entry
}

func newUpperTracker(upper string) (*upperTracker, error) {
	before, err := scanUpper(upper, false)
	if err != nil {
		return nil, err
	}
	return &upperTracker{upper: upper, before: before}, nil
}

// started records the state once the container is set up.
func (t *upperTracker) started() error {
	now, err := scanUpper(t.upper, false)
	if err != nil {
		return err
	}
	t.runtime = map[string]entry{}
	for p, e := range now {
		if old, ok := t.before[p]; !ok || old != e {
			if e, ok = lstatEntry(filepath.Join(t.upper, p), true); ok {
				t.runtime[p] = e
			}
		}
	}
	return nil
}

// unchanged lists, sorted, the runtime's entries that are as the runtime
// left them.
func (t *upperTracker) unchanged() []string {
	var out []string
	for p, e := range t.runtime {
		if now, ok := lstatEntry(filepath.Join(t.upper, p), true); ok && now == e {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// mergeSorted returns the sorted union of a and b.
func mergeSorted(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// writeBundle writes a bundle directory for the hooks: OCI hooks learn the
// bundle from the state on stdin and read config.json in it, whose
// root.path is the absolute rootfs. It holds the runtime spec without the
// process's environment.
func writeBundle(s Spec, spec *specs.Spec) (string, error) {
	rootfs, err := filepath.Abs(s.Rootfs)
	if err != nil {
		return "", err
	}
	dir, err := filepath.Abs(filepath.Join(s.StateDir, s.ID+".bundle"))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	c := *spec
	c.Root = &specs.Root{Path: rootfs}
	if spec.Process != nil {
		p := *spec.Process
		p.Args, p.Env, p.Cwd = s.Args, nil, orDefault(s.Cwd, "/")
		c.Process = &p
	}
	data, err := json.Marshal(&c)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// setBundleLabel points the state's "bundle" at dir (specconv takes the
// process's working directory, as the runc CLI runs in the bundle).
func setBundleLabel(cfg *configs.Config, dir string) {
	labels := cfg.Labels[:0]
	for _, l := range cfg.Labels {
		if !strings.HasPrefix(l, "bundle=") {
			labels = append(labels, l)
		}
	}
	cfg.Labels = append(labels, "bundle="+dir)
}
