package snapbuild

import (
	"os"
	"path/filepath"

	"github.com/snapbuild/snapbuild/sandbox"
)

// DefaultRoot is the store directory used when none is given: $SNAPBUILD_ROOT,
// else /var/lib/snapbuild for root, else $XDG_DATA_HOME/snapbuild or
// ~/.local/share/snapbuild.
func DefaultRoot() string {
	if r := os.Getenv("SNAPBUILD_ROOT"); r != "" {
		return r
	}
	if !sandbox.InUserNamespace() && os.Geteuid() == 0 {
		return "/var/lib/snapbuild"
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "snapbuild")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = "."
	}
	return filepath.Join(home, ".local", "share", "snapbuild")
}
