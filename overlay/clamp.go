package overlay

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// ClampTimes sets the mtime of every entry under dir (dir itself excluded)
// that is later than epoch to epoch, as Diff writes it with
// DiffOptions.Epoch, and leaves earlier mtimes and every access time as they
// are. Symlinks are not followed: a symlink's own time is set.
//
// A builder calls it on an upper dir after Diff and before committing the
// snapshot, so that the snapshot holds the times its layer holds: a store
// that built a layer and a store that unpacked it from an image then see
// the same files, and a later step (Python checking a .pyc against its
// source's mtime, make comparing times) does the same thing in both.
//
// Errors read "overlay clamp: <relpath>: <cause>"; a cancelled ctx stops the
// walk with an error wrapping ctx.Err().
func ClampTimes(ctx context.Context, dir string, epoch time.Time) error {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(epoch.UnixNano())}
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
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
		if !time.Unix(st.Mtim.Unix()).After(epoch) {
			return nil
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("overlay clamp: %s: %w", rel, err)
		}
		return nil
	})
}
