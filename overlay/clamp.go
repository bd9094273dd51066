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
// A timestamp-validated Python bytecode file (__pycache__/NAME.*.pyc, PEP
// 552 flags 0) records its source's mtime; where that source is in dir,
// matches the record (mtime in seconds and size) and is clamped, the record
// is clamped with it, so that the .pyc stays valid: Python would otherwise
// find it stale and write a new one in the next step that imports it.
//
// A builder calls it on an upper dir before Diff and the snapshot's commit,
// so that the snapshot holds the times its layer holds: a store that built a
// layer and a store that unpacked it from an image then see the same files,
// and a later step (Python checking a .pyc against its source, make
// comparing times) does the same thing in both.
//
// Errors read "overlay clamp: <relpath>: <cause>"; a cancelled ctx stops the
// walk with an error wrapping ctx.Err().
func ClampTimes(ctx context.Context, dir string, epoch time.Time) error {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(epoch.UnixNano())}
	// The original mtimes of the .py files clamped so far, for their
	// .pyc files met later in the walk.
	clampedPy := map[string]time.Time{}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, p)
		if err != nil {
			return fmt.Errorf("overlay clamp: %s: %w", rel, err)
		}
		if p == dir {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("overlay clamp: %w", err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("overlay clamp: %s: %w", rel, err)
		}
		mtime := time.Unix(st.Mtim.Unix())
		if !mtime.After(epoch) {
			return nil
		}
		if d.Type().IsRegular() {
			switch {
			case strings.HasSuffix(p, ".py"):
				clampedPy[p] = mtime
			case strings.HasSuffix(p, ".pyc") && filepath.Base(filepath.Dir(p)) == "__pycache__":
				if err := clampPycSource(p, clampedPy, epoch); err != nil {
					return fmt.Errorf("overlay clamp: %s: %w", rel, err)
				}
			}
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("overlay clamp: %s: %w", rel, err)
		}
		return nil
	})
}

// clampPycSource sets the source mtime recorded in the timestamp-validated
// .pyc at p to epoch when its source (DIR/NAME.py for DIR/__pycache__/
// NAME.TAG.pyc) is a regular file in the same tree whose mtime, before
// clamping (clampedPy, or its mtime now), is what the .pyc records and
// later than epoch, and whose size matches. Anything else is left alone.
func clampPycSource(p string, clampedPy map[string]time.Time, epoch time.Time) error {
	name := filepath.Base(p)
	src := filepath.Join(filepath.Dir(filepath.Dir(p)), name[:strings.IndexByte(name, '.')]+".py")
	var sst unix.Stat_t
	if err := unix.Lstat(src, &sst); err != nil || sst.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil // no source here (a lower layer's, or none)
	}
	smtime, ok := clampedPy[src]
	if !ok {
		smtime = time.Unix(sst.Mtim.Unix())
	}
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
