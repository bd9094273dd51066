package overlay

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// xattr is one extended attribute.
type xattr struct {
	name  string
	value []byte
}

const (
	trustedOverlayPrefix = "trusted.overlay."
	userOverlayPrefix    = "user.overlay."
	capabilityXattr      = "security.capability"
)

// opaqueXattr returns the name of the xattr that marks an opaque directory.
func opaqueXattr(userXattr bool) string {
	if userXattr {
		return userOverlayPrefix + "opaque"
	}
	return trustedOverlayPrefix + "opaque"
}

// isOverlayXattr reports whether name is overlayfs bookkeeping (opaque,
// origin, impure, uuid, ...) that must not reach a layer.
func isOverlayXattr(name string) bool {
	return strings.HasPrefix(name, trustedOverlayPrefix) || strings.HasPrefix(name, userOverlayPrefix)
}

// llistxattr returns the names of the xattrs of path (not following a final
// symlink) in the order the filesystem lists them. A filesystem without
// xattr support yields none.
func llistxattr(path string) ([]string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Llistxattr(path, buf)
		switch err {
		case nil:
		case unix.ERANGE:
			size, err := unix.Llistxattr(path, nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, max(size, 2*len(buf)))
			continue
		case unix.ENOTSUP:
			return nil, nil
		default:
			return nil, fmt.Errorf("listxattr: %w", err)
		}
		if n == 0 {
			return nil, nil
		}
		return strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00"), nil
	}
}

// lgetxattr returns the value of xattr name of path (not following a final
// symlink); ok is false when the xattr is not set.
func lgetxattr(path, name string) (value []byte, ok bool, err error) {
	buf := make([]byte, 128)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		switch err {
		case nil:
			return buf[:n], true, nil
		case unix.ERANGE:
			size, err := unix.Lgetxattr(path, name, nil)
			if err != nil {
				return nil, false, fmt.Errorf("getxattr %s: %w", name, err)
			}
			buf = make([]byte, max(size, 2*len(buf)))
		case unix.ENODATA, unix.ENOTSUP:
			return nil, false, nil
		default:
			return nil, false, fmt.Errorf("getxattr %s: %w", name, err)
		}
	}
}

// readXattrs returns the xattrs of path that belong in a layer, sorted by
// name, and whether path is marked opaque by the xattr called opaqueName.
func readXattrs(path, opaqueName string) (xs []xattr, opaque bool, err error) {
	names, err := llistxattr(path)
	if err != nil {
		return nil, false, err
	}
	for _, name := range names {
		if name == opaqueName {
			v, ok, err := lgetxattr(path, name)
			if err != nil {
				return nil, false, err
			}
			opaque = ok && string(v) == "y"
		}
		if isOverlayXattr(name) {
			continue
		}
		v, ok, err := lgetxattr(path, name)
		if err != nil {
			return nil, false, err
		}
		if ok { // it may vanish between list and get
			xs = append(xs, xattr{name, v})
		}
	}
	sortXattrs(xs)
	return xs, opaque, nil
}

func sortXattrs(xs []xattr) {
	// Insertion sort: an entry has a handful of xattrs at most.
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && xs[j].name < xs[j-1].name; j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}

// isOpaque reports whether the directory path is an opaque overlay directory.
func isOpaque(path, opaqueName string) (bool, error) {
	v, ok, err := lgetxattr(path, opaqueName)
	return ok && string(v) == "y", err
}

func equalXattrs(a, b []xattr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].name != b[i].name || !bytes.Equal(a[i].value, b[i].value) {
			return false
		}
	}
	return true
}

// VFS capability xattr layout (linux/capability.h).
const (
	vfsCapRevisionMask = 0xff000000
	vfsCapRevision2    = 0x02000000
	vfsCapRevision3    = 0x03000000
	vfsCapV2Size       = 20 // magic_etc + 2 * (permitted, inheritable)
	vfsCapV3Size       = 24 // v2 + rootid
)

// capabilityV2 converts a version 3 security.capability value (namespaced,
// with a trailing root uid) to version 2, keeping the flags (the effective
// bit) and the capability sets. Any other value is returned unchanged.
func capabilityV2(v []byte) []byte {
	if len(v) != vfsCapV3Size {
		return v
	}
	magic := binary.LittleEndian.Uint32(v)
	if magic&vfsCapRevisionMask != vfsCapRevision3 {
		return v
	}
	out := make([]byte, vfsCapV2Size)
	copy(out, v[:vfsCapV2Size])
	binary.LittleEndian.PutUint32(out, vfsCapRevision2|magic&^vfsCapRevisionMask)
	return out
}
