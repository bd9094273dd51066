package overlay

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// RemoveStubs deletes mount-target stubs (files/dirs that the runtime created in the rootfs only to mount over them,
// e.g. /etc/resolv.conf, /etc/hosts) from the upper dir, given as paths relative to the rootfs ("etc/resolv.conf"),
// and then removes each parent directory that was copied up only because of the stub: an upper dir that is now empty,
// not opaque, exists in the lowers as a dir, and has the same mode/uid/gid/xattrs as its lower counterpart.
//
// The overlay must not be mounted. lowers are the lower dirs, top-most first;
// userXattr selects the user.overlay.* xattr namespace, as for Diff. A
// leading "/" on a stub is ignored; a stub that leaves the rootfs ("../x")
// is an error.
//
// What is removed at a stub path: any non-directory except a whiteout, and
// an empty directory. A stub that is absent, a whiteout, a non-empty
// directory, or lies below a symlink or a non-directory in the upper dir is
// left alone (symlinks are never followed, so nothing outside upper is
// touched). Parents are only considered for stubs that were removed, and
// never beyond upper itself. A parent's mtime is not compared: creating the
// stub changed it.
//
// Errors read "overlay remove stubs: <stub>: <cause>"; RemoveStubs stops at
// the first.
func RemoveStubs(upper string, lowers []string, stubs []string, userXattr bool) error {
	upper = strings.TrimSuffix(upper, "/")
	stack, err := cleanLowers(lowers)
	if err != nil {
		return fmt.Errorf("overlay remove stubs: %w", err)
	}
	rels := make([]string, 0, len(stubs))
	for _, s := range stubs {
		rel := path.Clean(strings.TrimLeft(s, "/"))
		if rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
			return fmt.Errorf("overlay remove stubs: %q: not a path inside the rootfs", s)
		}
		rels = append(rels, rel)
	}
	// Deepest first: a path sorts before everything below it, so reverse
	// order handles nested stubs, and siblings before their shared parent.
	slices.Sort(rels)
	rels = slices.Compact(rels)
	slices.Reverse(rels)

	opaqueName := opaqueXattr(userXattr)
	for _, rel := range rels {
		removed, err := removeStub(upper, rel)
		if err != nil {
			return fmt.Errorf("overlay remove stubs: %s: %w", rel, err)
		}
		if !removed {
			continue
		}
		for dir := path.Dir(rel); dir != "."; dir = path.Dir(dir) {
			ok, err := removeCopiedUpDir(upper, dir, stack, opaqueName)
			if err != nil {
				return fmt.Errorf("overlay remove stubs: %s: parent %s: %w", rel, dir, err)
			}
			if !ok {
				break
			}
		}
	}
	return nil
}

// removeStub removes upper/rel if it is a stub; see RemoveStubs.
func removeStub(upper, rel string) (bool, error) {
	full, ok, err := resolveNoSymlinks(upper, rel)
	if err != nil || !ok {
		return false, err
	}
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		if err == unix.ENOENT {
			return false, nil
		}
		return false, err
	}
	switch {
	case isWhiteout(&st):
		return false, nil
	case isDir(&st):
		err = unix.Rmdir(full)
		if err == unix.ENOTEMPTY || err == unix.EEXIST {
			return false, nil
		}
	default:
		err = unix.Unlink(full)
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// resolveNoSymlinks returns upper/rel after checking that each parent of it
// below upper is a real directory; ok is false when one is missing or is not
// a directory.
func resolveNoSymlinks(upper, rel string) (full string, ok bool, err error) {
	full = upper
	comps := strings.Split(rel, "/")
	for _, c := range comps[:len(comps)-1] {
		full += "/" + c
		var st unix.Stat_t
		switch err := unix.Lstat(full, &st); err {
		case nil:
		case unix.ENOENT, unix.ENOTDIR:
			return "", false, nil
		default:
			return "", false, err
		}
		if !isDir(&st) {
			return "", false, nil
		}
	}
	return full + "/" + comps[len(comps)-1], true, nil
}

// removeCopiedUpDir removes the upper directory upper/rel if it is empty, not
// opaque, and a directory with the same mode, owner and xattrs in the merged
// lowers. It reports whether it removed it.
func removeCopiedUpDir(upper, rel string, lowers []string, opaqueName string) (bool, error) {
	full := upper + "/" + rel // parents were checked by resolveNoSymlinks
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		if err == unix.ENOENT {
			return false, nil
		}
		return false, err
	}
	if !isDir(&st) {
		return false, nil
	}
	empty, err := isEmptyDir(full)
	if err != nil || !empty {
		return false, err
	}
	xattrs, opaque, err := readXattrs(full, opaqueName)
	if err != nil || opaque {
		return false, err
	}
	lower, err := lookupPath(lowers, rel, opaqueName)
	if err != nil || lower == nil {
		return false, err
	}
	ls := &lower.st
	if st.Mode != ls.Mode || st.Uid != ls.Uid || st.Gid != ls.Gid { // Mode includes the type: a dir
		return false, nil
	}
	lx, _, err := readXattrs(lower.path, opaqueName)
	if err != nil || !equalXattrs(xattrs, lx) {
		return false, err
	}
	if err := unix.Rmdir(full); err != nil {
		return false, err
	}
	return true, nil
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}
