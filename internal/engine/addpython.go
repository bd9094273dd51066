package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/moby/go-archive"
	"github.com/snapbuild/snapbuild/internal/modal"
)

// PythonStandaloneDir is snapbuild.Builder.PythonStandaloneDir.
func (b *Engine) PythonStandaloneDir() string {
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
func (b *Engine) standalonePath(series string) string {
	return filepath.Join(b.PythonStandaloneDir(), modal.StandaloneBuilds[series].File(series))
}

// standaloneURL is where the tarball for series is downloaded from.
func standaloneURL(series string) string {
	build := modal.StandaloneBuilds[series]
	return fmt.Sprintf("https://github.com/astral-sh/python-build-standalone/releases/download/%s/%s", build.Release, build.File(series))
}

// pythonContext unpacks the tarball add_python needs (once, into the store)
// and returns the directory whose python/ tree the COPY takes.
func (b *Engine) pythonContext(method, series string) (string, error) {
	build := modal.StandaloneBuilds[series]
	file := b.standalonePath(series)
	if _, err := os.Stat(file); err != nil {
		return "", &modal.InvalidError{Method: method, Message: fmt.Sprintf(
			"add_python=%s needs %s (python-build-standalone release %s) in %s, which is missing: download "+
				"%s on a connected machine and copy it there (or name its directory with python_standalone_dir in the site configuration, or $SNAPBUILD_PYTHON_STANDALONE_DIR)",
			modal.PyRepr(series), build.File(series), build.Release, b.PythonStandaloneDir(), standaloneURL(series))}
	}
	return b.unpackStandalone(method, file)
}

// unpackStandalone unpacks a python-build-standalone tarball into the store,
// once per tarball (name, size and mtime), and returns the directory holding
// its python/ tree.
func (b *Engine) unpackStandalone(method, file string) (string, error) {
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
		return "", &modal.InvalidError{Method: method, Message: fmt.Sprintf("unpacking %s: %v", file, err)}
	}
	if fi, err := os.Stat(filepath.Join(tmp, "python")); err != nil || !fi.IsDir() {
		return "", &modal.InvalidError{Method: method, Message: fmt.Sprintf("%s has no python/ directory: is it an install_only build?", file)}
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, out); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	return out, nil
}
