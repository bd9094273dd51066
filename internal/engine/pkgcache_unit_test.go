package engine

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/snapbuild/snapbuild/internal/modal"
	"github.com/snapbuild/snapbuild/internal/worker"
)

// TestMethodCaches: the installer methods' steps get their tools' caches,
// each mounted below packageCacheRoot with variables that name its mount
// target; the steps of methods that run what the user wrote get none; the
// engine's switch turns them all off.
func TestMethodCaches(t *testing.T) {
	names := func(cs []worker.PackageCache) string {
		var n []string
		for _, c := range cs {
			n = append(n, c.Name)
		}
		return strings.Join(n, ",")
	}
	for method, want := range map[string]string{
		"apt_install":               "apt",
		"pip_install":               "pip",
		"pip_install_private_repos": "apt,pip",
		"uv_pip_install":            "uv",
		"uv_sync":                   "uv",
		"poetry_install_from_file":  "pip,poetry",
		"micromamba_install":        "micromamba",
		"run_commands":              "",
		"dockerfile_commands":       "",
		"from_dockerfile":           "",
		"run_function":              "",
		"debian_slim":               "",
	} {
		x := &llbLayer{b: &Engine{}, l: &modal.Layer{Method: method}}
		if got := names(x.packageCaches(t.Context(), nil)); got != want {
			t.Errorf("%s: caches %q, want %q", method, got, want)
		}
		x.b.noPackageCaches = true
		if got := x.packageCaches(t.Context(), nil); got != nil {
			t.Errorf("%s with the caches off: %q", method, names(got))
		}
	}
	for method, cs := range methodCaches {
		for _, c := range cs {
			if filepath.Dir(c.Dest) != packageCacheRoot || filepath.Base(c.Dest) != c.Name {
				t.Errorf("%s: cache %s mounted at %s, want %s/%s", method, c.Name, c.Dest, packageCacheRoot, c.Name)
			}
			if !slices.ContainsFunc(c.Env, func(kv string) bool { return strings.Contains(kv, "="+c.Dest) }) {
				t.Errorf("%s: cache %s: no variable names %s: %q", method, c.Name, c.Dest, c.Env)
			}
		}
	}
}

// TestPrepareAptCache: the apt cache holds apt's configuration and an
// archives/ directory whose partial/ (a killed download) is emptied each
// time; apt reads the configuration through APT_CONFIG, after which its
// archives are the cache's.
func TestPrepareAptCache(t *testing.T) {
	dir := t.TempDir()
	if err := prepareAptCache(dir); err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(dir, "archives", "partial")
	if err := os.MkdirAll(partial, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(partial, "half.deb"), []byte("half"), 0o644)
	os.WriteFile(filepath.Join(dir, "archives", "whole.deb"), []byte("whole"), 0o644)
	if err := prepareAptCache(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(partial, "half.deb")); !os.IsNotExist(err) {
		t.Errorf("a half-done download survived: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "archives", "whole.deb")); err != nil {
		t.Errorf("a downloaded package was removed: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "apt.conf")); err != nil || string(b) != aptCacheConf {
		t.Errorf("apt.conf = %q, %v", b, err)
	}

	aptConfig, err := exec.LookPath("apt-config")
	if err != nil {
		t.Skip("apt-config not found: apt's reading of the configuration is not checked")
	}
	cmd := exec.Command(aptConfig, "shell", "A", "Dir::Cache::Archives/d", "K", "APT::Keep-Downloaded-Packages", "B", "Binary::apt::APT::Keep-Downloaded-Packages")
	cmd.Env = append(os.Environ(), "APT_CONFIG="+filepath.Join(dir, "apt.conf"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("apt-config: %v", err)
	}
	for _, want := range []string{"A='" + packageCacheRoot + "/apt/archives/'", "K='true'", "B='true'"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("apt-config shell says\n%s\nwant %s", out, want)
		}
	}
}
