package modal

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Local paths.
//
// Every local path an Image method, a Secret, a Volume, a Function or a
// FilePatternMatcher reads is expanded the same way, by expandHome: a
// leading "~" alone or followed by "/" is the user's home directory ($HOME,
// as os.UserHomeDir finds it), as a shell and Python's os.path.expanduser
// do; "~name" (another user's home) is not expanded and stays a relative
// path. A path with "~" when the home directory is unknown ($HOME unset) is
// an error, not a path relative to the working directory. Image methods
// expand "~" when they are called, so that error is the Image's (Image.Err).
// A relative path is resolved against the working directory (absLocal):
// when the method is called by the installer methods and the Dockerfile
// methods, when the files are read by add_local_file and add_local_dir (as
// Modal resolves them when it uploads them), Secrets, Volumes, Functions
// and FilePatternMatcher files.
//
// Modal expands "~" in add_local_dir but not in add_local_file; snapbuild
// expands it everywhere (see docs/method-arguments.md).

// ExpandHome returns p with a leading "~" or "~/" replaced by the home
// directory. Other paths are returned as they are.
func ExpandHome(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("local path %q: cannot expand ~: %w; give the path without ~", p, err)
	}
	return filepath.Join(home, p[1:]), nil
}

// AbsLocal expands "~" in p (expandHome) and makes it absolute and clean.
func AbsLocal(p string) (string, error) {
	p, err := ExpandHome(p)
	if err != nil {
		return "", err
	}
	return filepath.Abs(p)
}
