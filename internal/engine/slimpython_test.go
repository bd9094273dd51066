package engine

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapbuild/snapbuild/internal/modal"
)

// uStandalone writes a python-build-standalone-shaped tarball holding files
// (path -> content) into dir under the name add_python expects for series.
func uStandalone(t *testing.T, dir, series string, files map[string]string) string {
	t.Helper()
	p := filepath.Join(dir, modal.StandaloneBuilds[series].File(series))
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	f.Close()
	return p
}

// The series decision: a Docker Hub mirror first (Modal's own image, micro
// pins included), then Debian for the series it ships, then a
// python-build-standalone tarball; otherwise an error naming both ways.
func TestSlimSource(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SNAPBUILD_PYTHON_STANDALONE_DIR", dir)
	b := uBuilder(t)
	archives := map[string]string{}
	for _, s := range []string{"3.10", "3.11", "3.12", "3.14"} {
		archives[s] = uStandalone(t, dir, s, map[string]string{"python/bin/python" + s: "py"})
	}
	base := func(version string) *modal.DebianBase {
		img := DebianSlim(version)
		if err := img.Err(); err != nil {
			t.Fatalf("DebianSlim(%q): %v", version, err)
		}
		return img.layers[0].Root.Debian
	}
	for _, tc := range []struct {
		version   string
		mirror    bool
		kind      slimKind
		ref       string // slimRegistry
		archive   string // slimStandalone
		pyVersion string
	}{
		{version: "3.11", kind: slimDebian}, // an archive for 3.11 does not change it
		{version: "3.13", kind: slimDebian},
		{version: "3.12", kind: slimStandalone, archive: archives["3.12"], pyVersion: "3.12.1"},
		{version: "3.10", kind: slimStandalone, archive: archives["3.10"], pyVersion: "3.10.13"},
		{version: "3.14", kind: slimStandalone, archive: archives["3.14"], pyVersion: "3.14.2"},
		{version: "3.11", mirror: true, kind: slimRegistry, ref: "docker.io/library/python:3.11.12-slim-bookworm"},
		{version: "3.12", mirror: true, kind: slimRegistry, ref: "docker.io/library/python:3.12.10-slim-bookworm"},
		{version: "3.12.3", mirror: true, kind: slimRegistry, ref: "docker.io/library/python:3.12.3-slim-bookworm"},
		{version: "3.13.1", mirror: true, kind: slimRegistry, ref: "docker.io/library/python:3.13.1-slim-bookworm"},
	} {
		b.slimFromRegistry = tc.mirror
		got, err := b.slimSource("debian_slim", base(tc.version))
		want := slimSource{kind: tc.kind, ref: tc.ref, archive: tc.archive, version: tc.pyVersion}
		if err != nil || got != want {
			t.Errorf("%s (mirror %v): %+v, %v; want %+v", tc.version, tc.mirror, got, err, want)
		}
	}
	// A Dockerfile's FROM python:3.11 is bootstrapped even with a mirror:
	// the mirror path is debian_slim's (the Dockerfile pulls it itself).
	b.slimFromRegistry = true
	if got, err := b.slimSource("from_dockerfile", offlinePython("python:3.11-slim")); err != nil || got.kind != slimDebian {
		t.Errorf("from_dockerfile python:3.11-slim: %+v, %v", got, err)
	}
	b.slimFromRegistry = false

	// Micro pins: only Modal's own image honours them.
	for _, v := range []string{"3.12.3", "3.11.8"} {
		_, err := b.slimSource("debian_slim", base(v))
		series := v[:4]
		want := "debian_slim: Python " + v + " cannot be had on this site: only Modal's own image honours a micro version exactly, " +
			"and that needs a Docker Hub mirror serving Modal's base docker.io/library/python:" + v + "-slim-bookworm, configured in registries.conf " +
			`(a [[registry]] with prefix "docker.io" and a [[registry.mirror]]; the site configuration's registries_conf or --registries-conf names the file; Go: WithDebianSlimFromRegistry). Without one, give the series alone ('` + series + "')"
		if err == nil || err.Error() != want {
			t.Errorf("%s:\n got  %v\n want %s", v, err, want)
		}
	}

	// Neither way: the error names the mirror setting and the archive's
	// file, directory and download address.
	os.Remove(archives["3.12"])
	_, err := b.slimSource("debian_slim", base("3.12"))
	want := "debian_slim: Python 3.12 cannot be had on this site: the Debian archive ships Python 3.11 (Debian bookworm) and Python 3.13 (Debian trixie) only. " +
		"Provide it one of two ways: (1) a Docker Hub mirror serving Modal's base docker.io/library/python:3.12.10-slim-bookworm, configured in registries.conf " +
		`(a [[registry]] with prefix "docker.io" and a [[registry.mirror]]; the site configuration's registries_conf or --registries-conf names the file; Go: WithDebianSlimFromRegistry); ` +
		"or (2) the python-build-standalone archive cpython-3.12.1+20240107-x86_64-unknown-linux-gnu-install_only.tar.gz in " + dir +
		" (or in the directory python_standalone_dir in the site configuration, --python-standalone-dir or SNAPBUILD_PYTHON_STANDALONE_DIR names), downloaded on a connected machine from " +
		"https://github.com/astral-sh/python-build-standalone/releases/download/20240107/cpython-3.12.1+20240107-x86_64-unknown-linux-gnu-install_only.tar.gz"
	var ie *modal.InvalidError
	if err == nil || err.Error() != want || !errors.As(err, &ie) {
		t.Errorf("no source:\n got  %v\n want %s", err, want)
	}
}

// Build refuses a debian_slim the site cannot provide before any step runs;
// the image itself is fine (the Python front end and recipes record it).
func TestDebianSlimUnprovidedFailsBeforeSteps(t *testing.T) {
	t.Setenv("SNAPBUILD_PYTHON_STANDALONE_DIR", t.TempDir())
	b := uBuilder(t)
	var started int
	b.progress = ProgressFunc(func(e Event) {
		if e.Kind == EventStart {
			started++
		}
	})
	img := DebianSlim("3.12").RunCommands([]string{"true"})
	if img.Err() != nil {
		t.Fatal(img.Err())
	}
	_, err := b.Build(t.Context(), img.layers)
	if err == nil || !strings.Contains(err.Error(), "Provide it one of two ways") || started != 0 {
		t.Errorf("err %v, %d steps started", err, started)
	}
}

// A tarball under the 3.12 name without python/bin/python3.12 is refused
// before Debian is bootstrapped.
func TestDebianSlimStandaloneWrongSeries(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SNAPBUILD_PYTHON_STANDALONE_DIR", dir)
	archive := uStandalone(t, dir, "3.12", map[string]string{"python/bin/python3.13": "py"})
	b := uBuilder(t)
	img := DebianSlim("3.12")
	ins, err := modal.ParseCommands(img.layers[0].Commands)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.fromDebian(t.Context(), &buildState{}, img.layers[0], ins[0], false, Event{})
	if want := "debian_slim: " + archive + " holds no python/bin/python3.12: is it a CPython 3.12 install_only build?"; err == nil || err.Error() != want {
		t.Errorf("err %v\nwant %s", err, want)
	}
}
