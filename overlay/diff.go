package overlay

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// DiffOptions configure Diff.
type DiffOptions struct {
	// Lowers are the lower dirs the upper was mounted over, top-most first
	// (each itself an upper dir of an earlier step, so it may contain
	// whiteouts and opaque xattrs).
	Lowers []string
	// UserXattr says overlay xattrs are user.overlay.* (user namespace), not
	// trusted.overlay.*.
	UserXattr bool
	// Epoch, if set, clamps every mtime later than it to Epoch (SOURCE_DATE_EPOCH,
	// as reproducible builds do; BuildKit's rewrite-timestamp) and is the
	// mtime of whiteouts. Nil keeps mtimes as the upper dir has them, to the
	// nanosecond, and gives whiteouts the Unix epoch.
	Epoch *time.Time
}

// Stats is what Diff wrote.
type Stats struct {
	Entries   int   // tar headers written, whiteouts and opaque markers included
	Whiteouts int   // whiteouts written: .wh.NAME files and .wh..wh..opq markers
	Bytes     int64 // regular file data written, in bytes (headers and padding excluded)
}

// ErrNotRepresentable is wrapped by Diff's error when the upper dir holds an
// entry that an OCI layer cannot express: a name starting with ".wh.".
var ErrNotRepresentable = errors.New("cannot be represented in an OCI layer")

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// Diff writes the changes recorded in the overlay upper dir `upper` as an uncompressed OCI layer tar (PAX format) to w.
//
// The overlay must not be mounted while Diff runs. Entries come in sorted
// order (names compared bytewise per path component, parents before
// children); names are relative ("etc/passwd", directories end in "/"), the
// upper dir itself has no entry. The stream is a function of the upper and
// lower trees only: run twice, Diff writes the same bytes.
//
// What is written, per upper entry:
//   - a whiteout (char device 0/0) becomes the empty file dir/.wh.NAME (mode
//     0, uid and gid 0, mtime Epoch or the Unix epoch), but only when NAME
//     exists in the merged lowers;
//   - an opaque directory over no directory of the merged lowers is written
//     with its whole subtree; over a directory, in the smaller of two forms
//     (the whole form on a tie): the directory, dir/.wh..wh..opq and its
//     whole subtree, or only the entries of the subtree that differ from the
//     lower ones plus a whiteout for each lower name it lacks, recursively
//     (what a directory renamed away and back needs, as mv copies it);
//   - an entry that equals the lower entry it shadows (type, mode with
//     setuid/setgid/sticky bits, uid, gid, mtime to the nanosecond, size,
//     symlink target, device number, xattrs other than overlay's, and file
//     content) is left out; for a directory only its header is left out.
//     Regular files with several links are always written, so that their
//     links stay links in the image;
//   - regular files sharing an inode: the first path written carries the
//     data, the later ones are hard links (tar.TypeLink) to it;
//   - sockets are skipped; FIFOs, symlinks and devices are written.
//
// Names are the file names' bytes; a header whose name or link target is
// not valid UTF-8 carries the PAX record hdrcharset=BINARY, so that readers
// that hold PAX names to UTF-8 (libarchive) accept it.
//
// Headers carry numeric uid and gid (no user or group names), the mode's
// permission and setuid/setgid/sticky bits, the mtime clamped to Epoch when
// Epoch is set (no access or change times), and xattrs as
// "SCHILY.xattr.NAME" PAX records, without trusted.overlay.* and
// user.overlay.*, with security.capability in version 2 form.
//
// Diff does O(entries in upper × lowers) work and never walks the lowers;
// for an opaque directory over a lower one it also lists the lower
// directories at the paths its subtree holds. It
// returns what it wrote so far along with any error. Errors read
// "overlay diff: <relpath>: <cause>"; an entry whose name starts with ".wh."
// yields an error wrapping ErrNotRepresentable; a cancelled ctx stops the walk
// between entries with an error wrapping ctx.Err().
func Diff(ctx context.Context, w io.Writer, upper string, opts DiffOptions) (Stats, error) {
	d := &differ{
		ctx:        ctx,
		tw:         tar.NewWriter(w),
		opaqueName: opaqueXattr(opts.UserXattr),
		epoch:      opts.Epoch,
		links:      make(map[fileID]string),
	}
	err := d.run(upper, opts.Lowers)
	if err == nil {
		err = d.tw.Close()
		if err != nil {
			err = fmt.Errorf("overlay diff: %w", err)
		}
	}
	return d.stats, err
}

type fileID struct{ dev, ino uint64 }

type differ struct {
	ctx        context.Context
	tw         *tar.Writer
	opaqueName string
	epoch      *time.Time
	links      map[fileID]string // first tar name written per hardlinked inode
	stats      Stats
	buf, buf2  []byte
}

func (d *differ) run(upper string, lowers []string) error {
	var st unix.Stat_t
	if err := unix.Stat(upper, &st); err != nil {
		return fmt.Errorf("overlay diff: .: upper dir %s: %w", upper, err)
	}
	if !isDir(&st) {
		return fmt.Errorf("overlay diff: .: upper dir %s: not a directory", upper)
	}
	stack, err := cleanLowers(lowers)
	if err != nil {
		return fmt.Errorf("overlay diff: .: %w", err)
	}
	return d.walkDir("", strings.TrimSuffix(upper, "/"), stack)
}

// walkDir writes the entries of the upper directory full (tar name prefix
// rel, "" for the root), whose lower stack is given.
func (d *differ) walkDir(rel, full string, stack []string) error {
	names, err := readDirNames(full)
	if err != nil {
		return pathErr(rel, err)
	}
	for _, name := range names {
		crel := name
		if rel != "" {
			crel = rel + "/" + name
		}
		if err := d.ctx.Err(); err != nil {
			return pathErr(crel, err)
		}
		if err := d.entry(crel, full+"/"+name, name, stack); err != nil {
			return err
		}
	}
	return nil
}

// pathErr wraps err, if not nil, with the tar name it concerns.
func pathErr(rel string, err error) error {
	if err == nil {
		return nil
	}
	if rel == "" {
		rel = "."
	}
	return fmt.Errorf("overlay diff: %s: %w", rel, err)
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// entry writes what the upper entry full (tar name rel, base name name) in a
// directory with the given lower stack contributes to the layer.
func (d *differ) entry(rel, full, name string, stack []string) error {
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		return pathErr(rel, err)
	}
	typ := st.Mode & unix.S_IFMT
	if typ == unix.S_IFSOCK {
		return nil
	}
	// Whiteouts first: they share one inode and must not reach hardlink detection.
	if isWhiteout(&st) {
		lower, err := lookupLower(stack, name)
		if err != nil {
			return pathErr(rel, err)
		}
		if lower == nil {
			return nil // nothing to delete
		}
		if strings.HasPrefix(name, whiteoutPrefix) {
			return pathErr(rel, fmt.Errorf("deleting a name that starts with %q: %w", whiteoutPrefix, ErrNotRepresentable))
		}
		return pathErr(rel, d.writeWhiteout(parentName(rel)+whiteoutPrefix+name))
	}
	if strings.HasPrefix(name, whiteoutPrefix) {
		return pathErr(rel, fmt.Errorf("name starts with %q: %w", whiteoutPrefix, ErrNotRepresentable))
	}
	xattrs, opaque, err := readXattrs(full, d.opaqueName)
	if err != nil {
		return pathErr(rel, err)
	}

	if typ == unix.S_IFDIR {
		lower, sub, err := descendLower(stack, name, d.opaqueName)
		if err != nil {
			return pathErr(rel, err)
		}
		if opaque && lower != nil && isDir(&lower.st) {
			// Deleted and made again, or renamed away and back: write
			// whichever form is smaller (see planOpaque).
			p, err := d.planOpaque(rel, full, &st, xattrs, lower, sub)
			if err != nil {
				return err
			}
			return d.writePlan(rel, full, &st, xattrs, p)
		}
		write := lower == nil || opaque
		if !write {
			same, err := d.unchanged(full, &st, xattrs, lower)
			if err != nil {
				return pathErr(rel, err)
			}
			write = !same
		}
		if write {
			if err := d.writeHeader(rel+"/", full, &st, xattrs); err != nil {
				return pathErr(rel, err)
			}
		}
		if opaque {
			sub = nil // over a non-directory or nothing: no marker, nothing shows through
		}
		return d.walkDir(rel, full, sub)
	}

	// Files with several links are written even when unchanged, so that the
	// links can point at them.
	if typ != unix.S_IFREG || st.Nlink <= 1 {
		lower, err := lookupLower(stack, name)
		if err != nil {
			return pathErr(rel, err)
		}
		if lower != nil {
			same, err := d.unchanged(full, &st, xattrs, lower)
			if err != nil {
				return pathErr(rel, err)
			}
			if same {
				return nil
			}
		}
	}
	return pathErr(rel, d.writeHeader(rel, full, &st, xattrs))
}

// parentName returns the tar name prefix of rel's parent: "" or "dir/".
func parentName(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i+1]
	}
	return ""
}

// unchanged reports whether the upper entry at full (stat st, layer xattrs
// xattrs) equals the lower entry it shadows, so that it was copied up without
// an effective change.
func (d *differ) unchanged(full string, st *unix.Stat_t, xattrs []xattr, lower *lowerEntry) (bool, error) {
	ls := &lower.st
	if st.Mode != ls.Mode || st.Uid != ls.Uid || st.Gid != ls.Gid || st.Mtim != ls.Mtim {
		return false, nil
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFLNK:
		if st.Size != ls.Size {
			return false, nil
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		if st.Rdev != ls.Rdev {
			return false, nil
		}
	}
	lx, _, err := readXattrs(lower.path, d.opaqueName)
	if err != nil {
		return false, err
	}
	if !equalXattrs(xattrs, lx) {
		return false, nil
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		a, err := os.Readlink(full)
		if err != nil {
			return false, err
		}
		b, err := os.Readlink(lower.path)
		if err != nil {
			return false, err
		}
		return a == b, nil
	case unix.S_IFREG:
		return d.sameContent(full, lower.path)
	}
	return true, nil
}

const bufSize = 128 << 10

// sameContent reports whether files a and b, known to be the same size, hold
// the same bytes.
func (d *differ) sameContent(a, b string) (bool, error) {
	fa, err := openFile(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := openFile(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	if d.buf == nil {
		d.buf = make([]byte, bufSize)
	}
	if d.buf2 == nil {
		d.buf2 = make([]byte, bufSize)
	}
	for {
		na, erra := io.ReadFull(fa, d.buf)
		nb, errb := io.ReadFull(fb, d.buf2)
		if na != nb || !bytes.Equal(d.buf[:na], d.buf2[:nb]) {
			return false, nil
		}
		for _, err := range [...]error{erra, errb} {
			if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
				return false, err
			}
		}
		if erra != nil || errb != nil {
			return erra != nil && errb != nil, nil
		}
	}
}

// fdReader reads a file descriptor directly. Diff opens thousands of small
// files; *os.File would add fcntl and epoll calls to each.
type fdReader int

// openFile opens path for reading without following a final symlink.
func openFile(path string) (fdReader, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fdReader(fd), nil
	}
}

func (r fdReader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(int(r), p)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (r fdReader) Close() error { return unix.Close(int(r)) }

func (d *differ) modTime(ts unix.Timespec) time.Time {
	t := time.Unix(ts.Unix())
	if d.epoch != nil && t.After(*d.epoch) {
		return *d.epoch
	}
	return t
}

// binaryNames adds the PAX record hdrcharset=BINARY to hdr when its name or
// link name is not valid UTF-8 (a Linux file name is any bytes but "/" and
// NUL). POSIX pax says the path and linkpath records, where archive/tar
// writes every non-ASCII name, are UTF-8 unless hdrcharset says otherwise;
// libarchive (bsdtar) holds it to that and fails such an entry without the
// record ("Pathname can't be converted from UTF-8 to current locale").
// Go's archive/tar (containerd, podman, umoci) and GNU tar take the bytes as
// they are either way; GNU tar warns that it ignores the keyword. Valid
// UTF-8 names get no record, so their layers are unchanged.
func binaryNames(hdr *tar.Header) {
	if utf8.ValidString(hdr.Name) && utf8.ValidString(hdr.Linkname) {
		return
	}
	if hdr.PAXRecords == nil {
		hdr.PAXRecords = map[string]string{}
	}
	hdr.PAXRecords["hdrcharset"] = "BINARY"
}

// writeWhiteout writes an empty whiteout file called name.
func (d *differ) writeWhiteout(name string) error {
	mtime := time.Unix(0, 0)
	if d.epoch != nil {
		mtime = *d.epoch
	}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		ModTime:  mtime,
		Format:   tar.FormatPAX,
	}
	binaryNames(hdr)
	if err := d.tw.WriteHeader(hdr); err != nil {
		return err
	}
	d.stats.Entries++
	d.stats.Whiteouts++
	return nil
}

// writeHeader writes the entry at full (stat st) as name, with its data for
// a regular file.
func (d *differ) writeHeader(name, full string, st *unix.Stat_t, xattrs []xattr) error {
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: d.modTime(st.Mtim),
		Format:  tar.FormatPAX,
	}
	var data bool
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
	case unix.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		if st.Nlink > 1 {
			id := fileID{st.Dev, st.Ino}
			if first, ok := d.links[id]; ok {
				hdr.Typeflag = tar.TypeLink
				hdr.Linkname = first
				break
			}
			d.links[id] = name
		}
		hdr.Size = st.Size
		data = true
	case unix.S_IFLNK:
		target, err := os.Readlink(full)
		if err != nil {
			return err
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(st.Rdev))
		hdr.Devminor = int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return fmt.Errorf("unsupported file type %#o", st.Mode&unix.S_IFMT)
	}
	if len(xattrs) > 0 && hdr.Typeflag != tar.TypeLink {
		hdr.PAXRecords = make(map[string]string, len(xattrs))
		for _, x := range xattrs {
			v := x.value
			if x.name == capabilityXattr {
				v = capabilityV2(v)
			}
			hdr.PAXRecords["SCHILY.xattr."+x.name] = string(v)
		}
	}
	binaryNames(hdr)

	f := fdReader(-1)
	if data && hdr.Size > 0 {
		// Open before writing the header, so that an unreadable file
		// fails before the stream is committed to it.
		var err error
		if f, err = openFile(full); err != nil {
			return err
		}
		defer f.Close()
	}
	if err := d.tw.WriteHeader(hdr); err != nil {
		return err
	}
	d.stats.Entries++
	if f < 0 {
		return nil
	}
	if d.buf == nil {
		d.buf = make([]byte, bufSize)
	}
	n, err := io.CopyBuffer(d.tw, io.LimitReader(f, hdr.Size), d.buf)
	d.stats.Bytes += n
	if err != nil {
		return err
	}
	if n != hdr.Size {
		return fmt.Errorf("file shrank while being read: %d of %d bytes: %w", n, hdr.Size, io.ErrUnexpectedEOF)
	}
	return nil
}
