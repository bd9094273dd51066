package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/continuity/sysx"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/snapbuild/snapbuild/overlay"
)

// Apply makes snapshot id: the uncompressed tar layer read from layer,
// applied onto snapshot parent ("" for none) with overlay.Apply, whose
// uncompressed digest must be diffID (else an error naming both). Whiteouts
// that hide nothing in parent are dropped before the commit (see
// pruneWhiteouts). It returns the layer paths of the device nodes skipped
// in a user namespace, where mknod is not allowed (overlay.ApplyOptions).
//
// Apply does not check whether id exists, and commits it as Commit does;
// callers that may apply one layer concurrently serialise themselves.
func (s *Store) Apply(ctx context.Context, parent, id digest.Digest, layer io.Reader, diffID digest.Digest) (skipped []string, err error) {
	a, err := s.Prepare(parent)
	if err != nil {
		return nil, err
	}
	defer a.Remove()
	if err := a.Unmount(); err != nil {
		return nil, err
	}
	got, err := overlay.Apply(ctx, a.Upper, layer, overlay.ApplyOptions{UserXattr: s.userXattr,
		SquashOwners:  s.squash,
		SkippedDevice: func(name string) { skipped = append(skipped, name) }})
	if err != nil {
		return nil, err
	}
	if got != diffID {
		return nil, fmt.Errorf("diffID mismatch: the layer's content has diffID %s, but %s was expected", got, diffID)
	}
	if err := s.pruneWhiteouts(a.Upper, parent); err != nil {
		return nil, err
	}
	return skipped, s.Commit(a, id)
}

// pruneWhiteouts removes from upper, a layer just unpacked onto snapshot
// parent ("" for none), the whiteouts that hide nothing: those whose path
// the filesystem below does not hold, or holds under a symlink or an
// opaque directory of upper. A tar layer may carry such whiteouts (a
// Diff's layer merged onto another filesystem does, by design), and
// applying them is a no-op; but overlayfs lists a whiteout in a directory
// that is not merged with a lower one, so a reader would see a name it
// cannot stat. The parent is mounted read-only only when upper holds
// whiteouts.
func (s *Store) pruneWhiteouts(upper string, parent digest.Digest) error {
	var outs []string
	err := filepath.WalkDir(upper, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.Type()&os.ModeCharDevice == 0 {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Rdev == 0 {
			rel, _ := filepath.Rel(upper, p)
			outs = append(outs, rel)
		}
		return nil
	})
	if err != nil || len(outs) == 0 {
		return err
	}
	below := ""
	if parent != "" {
		v, err := s.View(parent)
		if err != nil {
			return err
		}
		defer v.Remove()
		below = v.Rootfs
	}
	opaque := "trusted.overlay.opaque"
	if s.userXattr {
		opaque = "user.overlay.opaque"
	}
	for _, rel := range outs {
		hides, err := hidesSomething(upper, below, rel, opaque)
		if err != nil {
			return fmt.Errorf("whiteout %s: %w", rel, err)
		}
		if !hides {
			if err := os.Remove(filepath.Join(upper, rel)); err != nil {
				return err
			}
		}
	}
	return nil
}

// hidesSomething reports whether a whiteout at rel in upper hides an entry
// of the filesystem whose view is below ("" for none): every parent of rel
// must be a directory there (not a symlink) and not opaque in upper, and
// rel itself must exist there.
func hidesSomething(upper, below, rel, opaque string) (bool, error) {
	if below == "" {
		return false, nil
	}
	parts := strings.Split(rel, string(filepath.Separator))
	for i := range parts {
		p := filepath.Join(parts[:i+1]...)
		var st unix.Stat_t
		switch err := unix.Lstat(filepath.Join(below, p), &st); {
		case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
			return false, nil
		case err != nil:
			return false, err
		}
		if i == len(parts)-1 {
			return true, nil
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return false, nil
		}
		if _, err := sysx.LGetxattr(filepath.Join(upper, p), opaque); err == nil {
			return false, nil
		}
	}
	return false, nil
}
