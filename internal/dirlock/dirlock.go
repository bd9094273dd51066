// Package dirlock serializes the writers of one directory, across
// processes, with an advisory flock(2) on the directory itself: held by an
// open file description, it is released when its process dies.
package dirlock

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Lock creates dir (mode 0755, as far as the umask allows) if it does not
// exist and takes an exclusive flock on it, waiting for other holders. The
// returned function releases it. Readers that do not lock are not held
// back; the lock only orders writers that take it.
func Lock(dir string) (unlock func() error, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return f.Close, nil
}
