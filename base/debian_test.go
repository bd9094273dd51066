package base

import (
	"os"
	"os/exec"
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

// A base with a Python tree is identified by the tree's digest, not by the
// directory it was unpacked to; without one the definition is unchanged, so
// existing bases keep their cache keys.
func TestDefinitionLocalPython(t *testing.T) {
	d := Debian{Suite: "bookworm", Packages: SlimBuildPackages, Epoch: time.Unix(315532800, 0)}
	plain := d.Definition()
	if plain != "debian-slim/2 suite=bookworm packages=gcc,gfortran,build-essential,ca-certificates epoch=315532800" {
		t.Errorf("Definition = %q", plain)
	}
	d.Python = &LocalPython{Dir: "/a/python", Digest: "sha256:1111"}
	a := d.Definition()
	if a != plain+" python=sha256:1111 recipe=usr-local/1" {
		t.Errorf("Definition = %q", a)
	}
	d.Python = &LocalPython{Dir: "/elsewhere/python", Digest: "sha256:1111"}
	if d.Definition() != a {
		t.Error("the tree's directory changed the definition")
	}
	d.Python = &LocalPython{Dir: "/a/python", Digest: "sha256:2222"}
	if d.Definition() == a {
		t.Error("another tree gave the same definition")
	}
	if strings.Join(SlimPackages, ",") != "python3,python3-pip,python3-venv,python-is-python3,gcc,gfortran,build-essential,ca-certificates" {
		t.Errorf("SlimPackages changed (and with them every debian_slim cache key): %q", SlimPackages)
	}
}

// The install hook copies the tree into /usr/local, links the unversioned
// names the python images have, and runs the image's ldconfig (a stand-in
// chroot records the call here).
func TestInstallPythonHook(t *testing.T) {
	tree := filepath.Join(t.TempDir(), "it's python")
	for name, body := range map[string]string{"bin/python3.12": "py", "bin/pip3": "pip", "bin/pip": "own pip", "lib/libpython3.12.so": "lib"} {
		os.MkdirAll(filepath.Dir(filepath.Join(tree, name)), 0o755)
		os.WriteFile(filepath.Join(tree, name), []byte(body), 0o755)
	}
	os.Symlink("python3.12", filepath.Join(tree, "bin/python3"))
	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "usr/local/bin"), 0o755)
	fake := t.TempDir()
	os.WriteFile(filepath.Join(fake, "chroot"), []byte("#!/bin/sh\necho \"$@\" > \"$1/chroot-args\"\n"), 0o755)
	cmd := exec.Command("sh", "-c", "PYTHON_TREE="+shellQuote(tree)+"\n"+installPython, "sh", rootfs)
	cmd.Env = []string{"PATH=" + fake + ":/usr/bin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hook: %v\n%s", err, out)
	}
	for link, want := range map[string]string{"python": "python3", "python3": "python3.12"} {
		if got, err := os.Readlink(filepath.Join(rootfs, "usr/local/bin", link)); err != nil || got != want {
			t.Errorf("/usr/local/bin/%s -> %q (%v), want %q", link, got, err, want)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(rootfs, "usr/local/bin/pip")); string(got) != "own pip" {
		t.Errorf("the tree's own pip was replaced: %q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(rootfs, "usr/local/lib/libpython3.12.so")); string(got) != "lib" {
		t.Errorf("libpython3.12.so: %q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(rootfs, "chroot-args")); strings.TrimSpace(string(got)) != rootfs+" /sbin/ldconfig" {
		t.Errorf("chroot called with %q", got)
	}
	// A tree without bin/python3 is an error.
	os.Remove(filepath.Join(tree, "bin/python3"))
	rootfs = t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "usr/local/bin"), 0o755)
	cmd = exec.Command("sh", "-c", "PYTHON_TREE="+shellQuote(tree)+"\n"+installPython, "sh", rootfs)
	cmd.Env = []string{"PATH=" + fake + ":/usr/bin:/bin"}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "no bin/python3") {
		t.Errorf("tree without python3: %v %s", err, out)
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
