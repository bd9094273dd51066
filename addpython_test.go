package snapbuild

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/snapbuild/snapbuild/internal/modal"
)

func TestAddPythonCommands(t *testing.T) {
	for series, want := range map[string][]string{
		"3.12": {"COPY /python/. /usr/local", "RUN ln -s /usr/local/bin/python3 /usr/local/bin/python",
			"ENV TERMINFO_DIRS=/etc/terminfo:/lib/terminfo:/usr/share/terminfo:/usr/lib/terminfo"},
		"3.13":  {"COPY /python/. /usr/local", "ENV TERMINFO_DIRS=/etc/terminfo:/lib/terminfo:/usr/share/terminfo:/usr/lib/terminfo"},
		"3.14t": {"COPY /python/. /usr/local", "ENV TERMINFO_DIRS=/etc/terminfo:/lib/terminfo:/usr/share/terminfo:/usr/lib/terminfo"},
	} {
		got, err := addPythonCommands("from_registry", series)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: %q, %v", series, got, err)
		}
	}
	for series, want := range map[string]string{
		"3.12.1": "Python version must be specified as 'major.minor' for this interface; micro-level specification ('3.12.1') is not valid.",
		"3.9":    "add_python='3.9': python-build-standalone builds exist for",
		"2.7":    "add_python='2.7'",
	} {
		if _, err := addPythonCommands("from_registry", series); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", series, err, want)
		}
	}
	if f := modal.StandaloneBuilds["3.11"].File("3.11"); f != "cpython-3.11.5+20230826-x86_64-unknown-linux-gnu-install_only.tar.gz" {
		t.Errorf("3.11 file %s", f)
	}
}

// add_python copies the python/ tree of a python-build-standalone tarball
// from a local directory into /usr/local; a missing tarball fails before
// any step, naming the file and where to get it.
func TestAddPythonBuild(t *testing.T) {
	uNeedRoot(t)
	dir := t.TempDir()
	t.Setenv("SNAPBUILD_PYTHON_STANDALONE_DIR", dir)
	base := pImage(t, "amd64", pTar(t, [][2]string{{"etc/", ""}, {"etc/os-release", "ID=x\n"}}))
	b := uBuilder(t, WithPuller(func(context.Context, string, *Credentials) (v1.Image, error) { return base, nil }))
	img := FromRegistry("r.example/base:1", RegistryOptions{AddPython: "3.13"})
	_, err := b.Build(t.Context(), img)
	file := "cpython-3.13.0+20241008-x86_64-unknown-linux-gnu-install_only.tar.gz"
	if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), dir) ||
		!strings.Contains(err.Error(), "releases/download/20241008/"+file) {
		t.Fatalf("missing tarball: %v", err)
	}
	// A stand-in tarball with python/bin/python3.
	f, err := os.Create(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	for _, e := range []struct {
		name, body string
		mode       int64
	}{{"python/", "", 0o755}, {"python/bin/", "", 0o755}, {"python/bin/python3", "#!/bin/sh\necho standalone\n", 0o755}, {"python/lib/", "", 0o755}, {"python/lib/libpython3.13.so", "lib", 0o644}} {
		h := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag = tar.TypeDir
		}
		tw.WriteHeader(h)
		tw.Write([]byte(e.body))
	}
	tw.Close()
	zw.Close()
	f.Close()
	res, err := b.Build(t.Context(), img)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Config.Config.Env, "TERMINFO_DIRS=/etc/terminfo:/lib/terminfo:/usr/share/terminfo:/usr/lib/terminfo") {
		t.Errorf("env %q", res.Config.Config.Env)
	}
	rec, err := b.e.Store().Resolve(res.ID)
	if err != nil {
		t.Fatal(err)
	}
	v, err := b.e.Store().Snapshots().View(rec.ChainID)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Remove()
	got, err := os.ReadFile(filepath.Join(v.Rootfs, "usr/local/bin/python3"))
	if err != nil || string(got) != "#!/bin/sh\necho standalone\n" {
		t.Errorf("/usr/local/bin/python3: %q, %v", got, err)
	}
	if fi, err := os.Stat(filepath.Join(v.Rootfs, "usr/local/lib/libpython3.13.so")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("/usr/local/lib/libpython3.13.so: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(v.Rootfs, "python")); err == nil {
		t.Error("/python exists: the tree went to the root, not /usr/local")
	}
}
