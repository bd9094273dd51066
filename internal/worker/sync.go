package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/continuity/sysx"
	"golang.org/x/sys/unix"
)

// syncTree makes the directory tree dst hold what the tree src holds, the
// way an overlay upper dir on dst then records only the change: entries of
// dst that src lacks are removed; an entry of src that dst lacks, or holds
// with another type, is created as a copy; an entry both hold whose owner,
// mode, mtime, xattrs, size, content, symlink target or device number
// differ is updated (metadata) or replaced (content); equal entries are not
// touched. Regular files that share an inode in src share one in dst where
// the later ones are created. Sockets are left out (no layer holds them).
// Overlay's own xattrs (trusted.overlay.*, user.overlay.*) are neither
// compared nor copied.
func syncTree(ctx context.Context, src, dst string) error {
	s := &syncer{ctx: ctx, links: map[fileKey]string{}}
	return s.dir(src, dst, "") // the roots themselves are no layer entry
}

// fileKey identifies an inode of src.
type fileKey struct{ dev, ino uint64 }

type syncer struct {
	ctx   context.Context
	links map[fileKey]string // dst path of the first src path seen per multi-link inode
}

// dir syncs the children of directory dst with those of src; rel names
// them in errors.
func (s *syncer) dir(src, dst, rel string) error {
	want, err := readNames(src)
	if err != nil {
		return syncErr(rel, err)
	}
	have, err := readNames(dst)
	if err != nil {
		return syncErr(rel, err)
	}
	for _, name := range have {
		if _, ok := slices.BinarySearch(want, name); !ok {
			if err := os.RemoveAll(filepath.Join(dst, name)); err != nil {
				return syncErr(filepath.Join(rel, name), err)
			}
		}
	}
	for _, name := range want {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		if err := s.entry(filepath.Join(src, name), filepath.Join(dst, name), filepath.Join(rel, name)); err != nil {
			return err
		}
	}
	return nil
}

// entry syncs dst with src, one entry of the tree.
func (s *syncer) entry(src, dst, rel string) error {
	var sst, dstSt unix.Stat_t
	if err := unix.Lstat(src, &sst); err != nil {
		return syncErr(rel, err)
	}
	typ := sst.Mode & unix.S_IFMT
	if typ == unix.S_IFSOCK {
		return nil
	}
	err := unix.Lstat(dst, &dstSt)
	exists := err == nil
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return syncErr(rel, err)
	}
	if exists && dstSt.Mode&unix.S_IFMT != typ {
		if err := os.RemoveAll(dst); err != nil {
			return syncErr(rel, err)
		}
		exists = false
	}
	if typ == unix.S_IFREG && sst.Nlink > 1 {
		k := fileKey{uint64(sst.Dev), sst.Ino}
		if first, ok := s.links[k]; ok {
			var fst unix.Stat_t
			if exists && unix.Lstat(first, &fst) == nil && fst.Dev == dstSt.Dev && fst.Ino == dstSt.Ino {
				return nil // already the same file
			}
			if exists {
				if err := os.Remove(dst); err != nil {
					return syncErr(rel, err)
				}
			}
			if err := os.Link(first, dst); err == nil {
				return nil
			}
			exists = false // no link across devices: copy
		} else {
			s.links[k] = dst
		}
	}
	if !exists {
		return s.create(src, dst, rel, &sst)
	}
	if typ == unix.S_IFDIR {
		if err := s.dir(src, dst, rel); err != nil {
			return err
		}
		if err := unix.Lstat(dst, &dstSt); err != nil { // children changed its mtime
			return syncErr(rel, err)
		}
	}
	same, err := sameEntry(src, dst, &sst, &dstSt)
	if err != nil {
		return syncErr(rel, err)
	}
	switch {
	case same.meta && same.data:
		return nil
	case same.data:
		return syncErr(rel, setMeta(src, dst, &sst))
	}
	if err := os.Remove(dst); err != nil {
		return syncErr(rel, err)
	}
	return s.create(src, dst, rel, &sst)
}

// create makes dst a copy of src (a directory with its whole tree).
func (s *syncer) create(src, dst, rel string, st *unix.Stat_t) error {
	var err error
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err = os.Mkdir(dst, 0o700); err == nil {
			err = s.dir(src, dst, rel)
		}
	case unix.S_IFREG:
		err = copyFileData(src, dst)
	case unix.S_IFLNK:
		var target string
		if target, err = os.Readlink(src); err == nil {
			err = os.Symlink(target, dst)
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		err = unix.Mknod(dst, st.Mode, int(st.Rdev))
	default:
		err = fmt.Errorf("file type %o is not supported", st.Mode&unix.S_IFMT)
	}
	if err != nil {
		return syncErr(rel, err)
	}
	return syncErr(rel, setMeta(src, dst, st))
}

// copyFileData creates dst (which must not exist) with src's content.
func copyFileData(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}

// setMeta gives dst src's owner, mode, xattrs and mtime, in that order
// (chown clears setuid bits and security.capability). Symlinks get owner
// and mtime only.
func setMeta(src, dst string, st *unix.Stat_t) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("chown to %d:%d: %w", st.Uid, st.Gid, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Fchmodat(unix.AT_FDCWD, dst, st.Mode&0o7777, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
		want, err := xattrs(src)
		if err != nil {
			return err
		}
		have, err := xattrs(dst)
		if err != nil {
			return err
		}
		for name := range have {
			if _, ok := want[name]; !ok {
				if err := sysx.LRemovexattr(dst, name); err != nil {
					return fmt.Errorf("removing xattr %s: %w", name, err)
				}
			}
		}
		for name, v := range want {
			if hv, ok := have[name]; ok && bytes.Equal(hv, v) {
				continue
			}
			if err := sysx.LSetxattr(dst, name, v, 0); err != nil {
				return fmt.Errorf("setting xattr %s: %w", name, err)
			}
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}

// xattrs returns the xattrs of path (not following a symlink), without
// overlay's own.
func xattrs(path string) (map[string][]byte, error) {
	names, err := sysx.LListxattr(path)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing xattrs: %w", err)
	}
	m := make(map[string][]byte, len(names))
	for _, n := range names {
		if strings.HasPrefix(n, "trusted.overlay.") || strings.HasPrefix(n, "user.overlay.") {
			continue
		}
		v, err := sysx.LGetxattr(path, n)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading xattr %s: %w", n, err)
		}
		m[n] = v
	}
	return m, nil
}

// sameness says what of two entries of one type is equal.
type sameness struct {
	meta bool // owner, mode, mtime, xattrs
	data bool // content, size, symlink target, device number
}

// sameEntry compares src and dst, entries of the same type, as the overlay
// differ compares an upper entry with the lower one it shadows.
func sameEntry(src, dst string, a, b *unix.Stat_t) (sameness, error) {
	var s sameness
	s.meta = a.Mode == b.Mode && a.Uid == b.Uid && a.Gid == b.Gid && a.Mtim == b.Mtim
	if s.meta && a.Mode&unix.S_IFMT != unix.S_IFLNK {
		ax, err := xattrs(src)
		if err != nil {
			return s, err
		}
		bx, err := xattrs(dst)
		if err != nil {
			return s, err
		}
		s.meta = len(ax) == len(bx)
		for k, v := range ax {
			if w, ok := bx[k]; !ok || !bytes.Equal(v, w) {
				s.meta = false
			}
		}
	}
	switch a.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		s.data = true
	case unix.S_IFREG:
		if a.Size != b.Size {
			return s, nil
		}
		eq, err := sameContent(src, dst)
		s.data = eq
		return s, err
	case unix.S_IFLNK:
		at, err := os.Readlink(src)
		if err != nil {
			return s, err
		}
		bt, err := os.Readlink(dst)
		s.data = at == bt
		return s, err
	default:
		s.data = a.Rdev == b.Rdev
	}
	return s, nil
}

// sameContent reports whether two regular files hold the same bytes.
func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		doneA := ea == io.EOF || ea == io.ErrUnexpectedEOF
		doneB := eb == io.EOF || eb == io.ErrUnexpectedEOF
		switch {
		case ea != nil && !doneA:
			return false, ea
		case eb != nil && !doneB:
			return false, eb
		case doneA || doneB:
			return doneA && doneB, nil
		}
	}
}

// readNames returns the names in directory dir, sorted.
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

func syncErr(rel string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", "/"+rel, err)
}
