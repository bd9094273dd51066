package base

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefinition(t *testing.T) {
	d := Debian{Suite: "bookworm", Packages: []string{"python3", "gcc"}, Epoch: time.Unix(315532800, 0)}
	got := d.Definition()
	want := "debian-slim/2 suite=bookworm packages=python3,gcc epoch=315532800"
	if got != want {
		t.Errorf("Definition = %q, want %q", got, want)
	}
	// The mirror is not part of it: the archive state is.
	d.Mirror = "http://mirror.example/debian"
	if d.Definition() != want {
		t.Error("the mirror changed the definition")
	}
}

func TestMirror(t *testing.T) {
	t.Setenv("SNAPBUILD_DEBIAN_MIRROR", "")
	if m := (Debian{}).mirror(); m != DefaultMirror {
		t.Errorf("default mirror %q", m)
	}
	t.Setenv("SNAPBUILD_DEBIAN_MIRROR", "http://local/debian")
	if m := (Debian{}).mirror(); m != "http://local/debian" {
		t.Errorf("env mirror %q", m)
	}
	if m := (Debian{Mirror: "http://x"}).mirror(); m != "http://x" {
		t.Errorf("explicit mirror %q", m)
	}
}

func TestPythonVersion(t *testing.T) {
	root := t.TempDir()
	if v := PythonVersion(root); v != "" {
		t.Errorf("no dpkg status: %q", v)
	}
	status := "Package: python3-minimal\nVersion: 3.11.2-1+b1\n\nPackage: python3\nStatus: install ok installed\nVersion: 3.11.2-1+b1\n\n"
	os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755)
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), []byte(status), 0o644)
	if v := PythonVersion(root); v != "3.11.2" {
		t.Errorf("PythonVersion = %q, want 3.11.2", v)
	}
}

func TestEmptyDev(t *testing.T) {
	root := t.TempDir()
	dev := filepath.Join(root, "dev")
	os.MkdirAll(filepath.Join(dev, "pts"), 0o755)
	os.WriteFile(filepath.Join(dev, "null"), nil, 0o666)
	os.Symlink("/proc/self/fd", filepath.Join(dev, "fd"))
	if err := emptyDev(root); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dev)
	if err != nil || len(ents) != 0 {
		t.Errorf("dev holds %v (%v)", ents, err)
	}
	if err := emptyDev(t.TempDir()); err == nil || !strings.Contains(err.Error(), "debian base") {
		t.Errorf("no /dev: %v", err)
	}
}

func TestBootstrapNeedsMmdebstrap(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	err := Debian{Suite: "bookworm"}.Bootstrap(t.Context(), t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), "apt-get install mmdebstrap") {
		t.Errorf("err = %v", err)
	}
}
