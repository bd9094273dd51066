// Package atomicfile writes files so that readers see the old content or the
// new, never a part: the data goes to a temporary file in the same directory,
// which is synced and renamed over the target.
package atomicfile

import (
	"io"
	"os"
	"path/filepath"
)

// Write writes data to path with the given permission bits. The temporary
// file is removed on any failure.
func Write(path string, data []byte, perm os.FileMode) error {
	return Copy(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Copy writes what fill writes to path with the given permission bits.
func Copy(path string, perm os.FileMode, fill func(w io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
