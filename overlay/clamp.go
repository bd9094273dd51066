package overlay

import (
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ClampTimes sets the mtime of every entry under dir (dir itself excluded)
// that is later than epoch to epoch, as Diff writes it with
// DiffOptions.Epoch, and leaves earlier mtimes and every access time as they
// are. Symlinks are not followed: a symlink's own time is set.
//
// A builder calls ClampPyc on an upper dir before Diff, and ClampTimes after
// Diff and before the snapshot's commit, so that the snapshot holds what its
// layer holds: a store that built a layer and a store that unpacked it from
// an image then see the same files, and a later step (Python checking a .pyc
// against its source, make comparing times) does the same thing in both.
// Diff itself sees the times the step left, so the layer does not depend on
// the clamp.
//
// Errors read "overlay clamp: <relpath>: <cause>"; a cancelled ctx stops the
// walk with an error wrapping ctx.Err().
func ClampTimes(ctx context.Context, dir string, epoch time.Time) error {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(epoch.UnixNano())}
	return walkLater(ctx, dir, epoch, nil, func(p string, _ fs.DirEntry) error {
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// ClampPyc readies the timestamp-validated Python bytecode files under dir
// (__pycache__/NAME.TAG.pyc, PEP 552 flags 0) for ClampTimes: one whose
// source (NAME.py beside __pycache__) is in dir, later than epoch, and what
// the .pyc records (mtime in seconds and size) gets epoch as the recorded
// mtime, so that it is still valid once the source is clamped. Python would
// otherwise find it stale and write a new one in the next step that imports
// it. Hash-based .pyc files, stale ones, and ones whose source is elsewhere
// (a lower layer's) keep their bytes. Errors are ClampTimes'.
func ClampPyc(ctx context.Context, dir string, epoch time.Time) error {
	return walkLater(ctx, dir, epoch, isCachedPyc, func(p string, _ fs.DirEntry) error {
		return clampPycSource(p, epoch)
	})
}

// isCachedPyc reports whether p is a regular file NAME.pyc in a
// __pycache__ directory, from its name and the type its directory lists,
// without a stat.
func isCachedPyc(p string, d fs.DirEntry) bool {
	return d.Type().IsRegular() && strings.HasSuffix(p, ".pyc") && filepath.Base(filepath.Dir(p)) == "__pycache__"
}

// walkLater calls fn for every entry under dir (dir excluded) whose mtime is
// later than epoch, in lexical order. A non-nil want picks the entries to
// look at from the walk alone (path and listed type), before the stat
// that reads the mtime: one lstat fewer per entry it turns down.
func walkLater(ctx context.Context, dir string, epoch time.Time, want func(p string, d fs.DirEntry) bool, fn func(p string, d fs.DirEntry) error) error {
	rel := func(p string) string { r, _ := filepath.Rel(dir, p); return r }
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("overlay clamp: %s: %w", rel(p), err)
		}
		if p == dir {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("overlay clamp: %w", err)
		}
		if want != nil && !want(p, d) {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("overlay clamp: %s: %w", rel(p), err)
		}
		if !time.Unix(st.Mtim.Unix()).After(epoch) {
			return nil
		}
		if err := fn(p, d); err != nil {
			return fmt.Errorf("overlay clamp: %s: %w", rel(p), err)
		}
		return nil
	})
}

// clampPycSource sets the source mtime recorded in the timestamp-validated
// .pyc at p to epoch when its source (DIR/NAME.py for DIR/__pycache__/
// NAME.TAG.pyc) is a regular file in the same tree whose mtime is what the
// .pyc records and later than epoch, and whose size matches. Anything else
// is left alone.
func clampPycSource(p string, epoch time.Time) error {
	name := filepath.Base(p)
	src := filepath.Join(filepath.Dir(filepath.Dir(p)), name[:strings.IndexByte(name, '.')]+".py")
	var sst unix.Stat_t
	if err := unix.Lstat(src, &sst); err != nil || sst.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil // no source here (a lower layer's, or none)
	}
	smtime := time.Unix(sst.Mtim.Unix())
	if !smtime.After(epoch) {
		return nil
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var h [16]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return nil // too short to be a .pyc
	}
	flags := binary.LittleEndian.Uint32(h[4:8])
	recMtime := binary.LittleEndian.Uint32(h[8:12])
	recSize := binary.LittleEndian.Uint32(h[12:16])
	if h[2] != '\r' || h[3] != '\n' || flags != 0 || int64(recMtime) != smtime.Unix()&0xFFFFFFFF || recSize != uint32(sst.Size) {
		return nil // hash-based, or not a record of this source
	}
	binary.LittleEndian.PutUint32(h[8:12], uint32(epoch.Unix()))
	if _, err := f.WriteAt(h[8:12], 8); err != nil {
		return err
	}
	return f.Close()
}
