package snapbuild

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/snapbuild/snapbuild/internal/modal"
	"go.podman.io/storage/pkg/archive"
)

// standaloneBuild is the python-build-standalone build Modal's add_python
// installs for a series: release date and full version.
type standaloneBuild struct{ release, version string }

var standaloneBuilds = map[string]standaloneBuild{
	"3.10":  {"20230826", "3.10.13"},
	"3.11":  {"20230826", "3.11.5"},
	"3.12":  {"20240107", "3.12.1"},
	"3.13":  {"20241008", "3.13.0"},
	"3.14":  {"20251205", "3.14.2"},
	"3.14t": {"20251209", "3.14.2"},
}

// file is the release asset's name: the glibc "install_only" tarball, whose
// root directory is python/.
func (s standaloneBuild) file(series string) string {
	variant := "install_only"
	if strings.HasSuffix(series, "t") {
		variant = "freethreaded-install_only"
	}
	return fmt.Sprintf("cpython-%s+%s-x86_64-unknown-linux-gnu-%s.tar.gz", s.version, s.release, variant)
}

var addPythonRE = regexp.MustCompile(`^3\.\d{1,2}t?$`)

// addPythonCommands validates add_python and returns Modal's commands for
// it: the tree copied to /usr/local, a python symlink before 3.13,
// TERMINFO_DIRS.
func addPythonCommands(method, series string) ([]string, error) {
	if regexp.MustCompile(`^3\.\d{1,2}\.\d+`).MatchString(series) {
		return nil, modal.Invalidf(method, "Python version must be specified as 'major.minor' for this interface; micro-level specification (%s) is not valid.", modal.PyRepr(series))
	}
	if _, ok := standaloneBuilds[series]; !ok || !addPythonRE.MatchString(series) {
		return nil, modal.Invalidf(method, "add_python=%s: python-build-standalone builds exist for 3.10, 3.11, 3.12, 3.13, 3.14 and 3.14t", modal.PyRepr(series))
	}
	cmds := []string{"COPY /python/. /usr/local"}
	var minor int
	fmt.Sscanf(strings.TrimSuffix(series, "t"), "3.%d", &minor)
	if minor < 13 {
		cmds = append(cmds, "RUN ln -s /usr/local/bin/python3 /usr/local/bin/python")
	}
	return append(cmds, "ENV TERMINFO_DIRS=/etc/terminfo:/lib/terminfo:/usr/share/terminfo:/usr/lib/terminfo"), nil
}

// PythonStandaloneDir is where add_python looks for python-build-standalone
// tarballs: the WithPythonStandaloneDir (or WithSite) directory, else
// $SNAPBUILD_PYTHON_STANDALONE_DIR, else <store>/python-build-standalone.
func (b *Builder) PythonStandaloneDir() string {
	if b.pythonDir != "" {
		return b.pythonDir
	}
	if d := os.Getenv("SNAPBUILD_PYTHON_STANDALONE_DIR"); d != "" {
		return d
	}
	return filepath.Join(b.store.Root(), "python-build-standalone")
}

// standalonePath is where the python-build-standalone tarball for series is
// looked for.
func (b *Builder) standalonePath(series string) string {
	return filepath.Join(b.PythonStandaloneDir(), standaloneBuilds[series].file(series))
}

// standaloneURL is where the tarball for series is downloaded from.
func standaloneURL(series string) string {
	build := standaloneBuilds[series]
	return fmt.Sprintf("https://github.com/astral-sh/python-build-standalone/releases/download/%s/%s", build.release, build.file(series))
}

// pythonContext unpacks the tarball add_python needs (once, into the store)
// and returns the directory whose python/ tree the COPY takes.
func (b *Builder) pythonContext(method, series string) (string, error) {
	build := standaloneBuilds[series]
	file := b.standalonePath(series)
	if _, err := os.Stat(file); err != nil {
		return "", &InvalidError{Method: method, Message: fmt.Sprintf(
			"add_python=%s needs %s (python-build-standalone release %s) in %s, which is missing: download "+
				"%s on a connected machine and copy it there (or name its directory with python_standalone_dir in the site configuration, or $SNAPBUILD_PYTHON_STANDALONE_DIR)",
			modal.PyRepr(series), build.file(series), build.release, b.PythonStandaloneDir(), standaloneURL(series))}
	}
	return b.unpackStandalone(method, file)
}

// unpackStandalone unpacks a python-build-standalone tarball into the store,
// once per tarball (name, size and mtime), and returns the directory holding
// its python/ tree.
func (b *Builder) unpackStandalone(method, file string) (string, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return "", err
	}
	key := modal.SHA256Hex(fmt.Sprintf("%s %d %d", fi.Name(), fi.Size(), fi.ModTime().UnixNano()))[:16]
	out := filepath.Join(b.store.Root(), "python-build-standalone", ".unpacked", key)
	if _, err := os.Stat(filepath.Join(out, "python")); err == nil {
		return out, nil
	}
	tmp, err := os.MkdirTemp(filepath.Join(b.store.Root(), "tmp"), "python-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := archive.Untar(f, tmp, &archive.TarOptions{NoLchown: true}); err != nil {
		return "", &InvalidError{Method: method, Message: fmt.Sprintf("unpacking %s: %v", file, err)}
	}
	if fi, err := os.Stat(filepath.Join(tmp, "python")); err != nil || !fi.IsDir() {
		return "", &InvalidError{Method: method, Message: fmt.Sprintf("%s has no python/ directory: is it an install_only build?", file)}
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, out); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	return out, nil
}
