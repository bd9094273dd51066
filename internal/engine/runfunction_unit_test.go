package engine

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/snapbuild/snapbuild/internal/modal"
)

// A host volume's "~" is the home directory, as for every local path.
func TestVolumeDirTilde(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := os.Mkdir(filepath.Join(home, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if dir, err := (&Engine{}).volumeDir(modal.HostVolume("~/d")); err != nil || dir != filepath.Join(home, "d") {
		t.Errorf("HostVolume: %q, %v", dir, err)
	}
}
