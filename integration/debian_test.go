package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDebianSlimContent checks what debian_slim promises to match of Modal's
// image: python and pip on PATH, pip installs into the system Python (no PEP
// 668 refusal), gcc, gfortran and make, debconf noninteractive, CMD
// ["sleep", "172800"], and no host resolv.conf, hostname or mount stubs in
// any layer.
func TestDebianSlimContent(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap", "skopeo", "zstd", "tar")
	requireMirror(t)
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, "slim.yaml", "- debian_slim: {python_version: \"3.11\"}\n- run_commands: [\"true\"]\n")
	r := runner{t: t, root: rootDir}
	r.build(recipe)

	// A wheel made on the spot: pip must install it system-wide.
	script := `set -e
python --version; pip --version
gcc --version | head -1; gfortran --version | head -1; make --version | head -1
grep -A2 '^Name: debconf/frontend' /var/cache/debconf/config.dat | grep Value
cd /tmp && python - <<'PY'
import zipfile
with zipfile.ZipFile("hellowheel-1.0-py3-none-any.whl", "w") as z:
    z.writestr("hellowheel/__init__.py", "MSG = 'wheel-ok'\n")
    z.writestr("hellowheel-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: hellowheel\nVersion: 1.0\n")
    z.writestr("hellowheel-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr("hellowheel-1.0.dist-info/RECORD", "")
PY
pip install --no-index --no-deps /tmp/hellowheel-1.0-py3-none-any.whl
cd / && python -c 'import hellowheel; print(hellowheel.MSG)'
stat -c 'clamped %Y' /usr/lib/python3.11/os.py
`
	out := r.ok("run", "--network", "none", "slim", "--", "sh", "-c", script)
	for _, want := range []string{"Python 3.11.", "pip ", "gcc (Debian", "GNU Fortran", "GNU Make", "Value: Noninteractive", "wheel-ok",
		// The bootstrapped base's snapshot holds the layer's clamped
		// mtimes (SOURCE_DATE_EPOCH), as a store that pulled it has them.
		"clamped 315532800"} {
		if !strings.Contains(out.stdout, want) {
			t.Errorf("debian_slim lacks %q:\n%s\n%s", want, out.stdout, tail(out.stderr, 20))
		}
	}

	// Modal's ImageMetadata, probed after the build.
	var meta struct {
		Metadata struct {
			PythonVersionInfo string            `json:"python_version_info"`
			PythonPackages    map[string]string `json:"python_packages"`
			LibcVersionInfo   string            `json:"libc_version_info"`
			Builder           string            `json:"image_builder_version"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(r.ok("inspect", "slim").stdout), &meta); err != nil {
		t.Fatal(err)
	}
	md := meta.Metadata
	if !strings.HasPrefix(md.PythonVersionInfo, "Python 3.11.") || md.PythonPackages["pip"] == "" ||
		!strings.HasPrefix(md.LibcVersionInfo, "glibc 2.") || md.Builder != "2025.06" {
		t.Errorf("metadata = %+v", md)
	}

	layout := filepath.Join(t.TempDir(), "layout")
	r.ok("export", "slim", "oci:"+layout+":slim")
	cfgJSON, err := exec.Command("skopeo", "inspect", "--config", "oci:"+layout+":slim").Output()
	if err != nil {
		t.Fatalf("skopeo inspect --config: %v", err)
	}
	var cfg struct {
		Config struct {
			Cmd []string
			Env []string
		} `json:"config"`
		History []struct {
			CreatedBy  string `json:"created_by"`
			EmptyLayer bool   `json:"empty_layer"`
		} `json:"history"`
	}
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Config.Cmd, " ") != "sleep 172800" {
		t.Errorf("CMD = %q, want [sleep 172800]", cfg.Config.Cmd)
	}
	if len(cfg.History) != 3 || !strings.HasPrefix(cfg.History[0].CreatedBy, "FROM python:3.11-slim-bookworm") ||
		!cfg.History[1].EmptyLayer || cfg.History[2].CreatedBy != "RUN true" || !cfg.History[2].EmptyLayer {
		t.Errorf("history = %+v, want FROM, CMD (empty), RUN true (empty: it changes nothing)", cfg.History)
	}

	// No layer holds the host's resolv.conf or hostname, or a mount stub.
	var index struct {
		Manifests []struct{ Digest string }
	}
	readJSON(t, filepath.Join(layout, "index.json"), &index)
	var manifest struct {
		Layers []struct{ Digest string }
	}
	readJSON(t, filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(index.Manifests[0].Digest, "sha256:")), &manifest)
	if len(manifest.Layers) != 1 {
		t.Fatalf("%d layers, want 1 (the base; RUN true changes nothing)", len(manifest.Layers))
	}
	blob := filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(manifest.Layers[0].Digest, "sha256:"))
	list, err := exec.Command("tar", "--zstd", "-tf", blob).Output()
	if err != nil {
		t.Fatalf("tar --zstd -tf: %v", err)
	}
	for _, name := range strings.Split(string(list), "\n") {
		switch strings.TrimPrefix(name, "./") {
		case "etc/resolv.conf", "etc/hostname", "etc/hosts":
			t.Errorf("the base layer holds %s", name)
		}
		if strings.HasPrefix(name, "dev/") && name != "dev/" {
			t.Errorf("the base layer holds %s (device nodes cannot be made rootless)", name)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
