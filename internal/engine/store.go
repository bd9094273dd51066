package engine

import (
	"os"
	"path/filepath"

	"github.com/snapbuild/snapbuild/sandbox"
)

// DefaultRoot is snapbuild.DefaultRoot.
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
