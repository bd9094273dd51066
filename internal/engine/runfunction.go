package engine

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/snapbuild/snapbuild/internal/modal"
)

// volumeDir returns the host directory of v, making a named volume when
// v.CreateIfMissing.
func (b *Engine) volumeDir(v modal.Volume) (string, error) {
	if v.HostPath != "" {
		dir, err := modal.AbsLocal(v.HostPath)
		if err != nil {
			return "", err
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return "", fmt.Errorf("volume directory %s does not exist: create it first", dir)
		}
		return dir, nil
	}
	dir := filepath.Join(b.store.Root(), "volumes", v.Name)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	if !v.CreateIfMissing {
		return "", fmt.Errorf("Volume '%s' not found: create it with create_if_missing=True (a directory %s)", v.Name, dir)
	}
	if b.plan != nil {
		return dir, nil // a dry run makes nothing
	}
	return dir, os.MkdirAll(dir, 0o755)
}
