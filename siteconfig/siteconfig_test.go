package siteconfig

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestLoadPrecedence: the user file overrides the system file key by key
// (lists whole, env per variable), the environment overrides both, and a
// named file replaces both.
func TestLoadPrecedence(t *testing.T) {
	dir := t.TempDir()
	sys := write(t, dir, "etc/site.yaml", `
pip_index_url: http://sys.internal/simple
pip_extra_index_urls: [http://sys.internal/a, http://sys.internal/b]
pip_trusted_hosts: sys.internal
conda_channel_alias: http://sys.internal/conda
debian_mirror: http://sys.internal/debian
env:
  HTTPS_PROXY: http://proxy.sys:3128
  PIP_NO_CACHE_DIR: "1"
`)
	cfg := filepath.Join(dir, "home", "config")
	write(t, cfg, "snapbuild/site.yaml", `
pip_index_url: http://user.internal/simple
pip_extra_index_urls: [http://user.internal/x]
pip_trusted_hosts: ""
conda_channel_alias: null
env: {HTTPS_PROXY: http://proxy.user:3128}
`)
	s, read, err := Load(Options{SystemFile: sys, Getenv: env(map[string]string{"XDG_CONFIG_HOME": cfg})})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{sys, filepath.Join(cfg, "snapbuild/site.yaml")}; !reflect.DeepEqual(read, want) {
		t.Errorf("read %v, want %v", read, want)
	}
	want := Site{
		PipIndexURL:       "http://user.internal/simple",
		PipExtraIndexURLs: []string{"http://user.internal/x"},
		DebianMirror:      "http://sys.internal/debian",
		Env:               map[string]string{"HTTPS_PROXY": "http://proxy.user:3128", "PIP_NO_CACHE_DIR": "1"},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("merged:\n%+v\nwant\n%+v", s, want)
	}

	// The environment overrides the files.
	s, _, err = Load(Options{SystemFile: sys, UserFile: filepath.Join(dir, "none.yaml"), Getenv: env(map[string]string{
		"SNAPBUILD_DEBIAN_MIRROR": "http://env.internal/debian", "SNAPBUILD_PYTHON_STANDALONE_DIR": "/srv/pbs"})})
	if err != nil {
		t.Fatal(err)
	}
	if s.DebianMirror != "http://env.internal/debian" || s.PythonStandaloneDir != "/srv/pbs" || s.PipIndexURL != "http://sys.internal/simple" {
		t.Errorf("env over files: %+v", s)
	}

	// A named file (flag, then $SNAPBUILD_SITE_CONFIG) replaces both files.
	named := write(t, dir, "named.yaml", "uv_index_url: http://named.internal/simple\n")
	for _, o := range []Options{
		{File: named, SystemFile: sys, Getenv: env(map[string]string{"SNAPBUILD_SITE_CONFIG": sys})},
		{SystemFile: sys, Getenv: env(map[string]string{"SNAPBUILD_SITE_CONFIG": named})},
	} {
		s, read, err = Load(o)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s, Site{UvIndexURL: "http://named.internal/simple"}) || !reflect.DeepEqual(read, []string{named}) {
			t.Errorf("named file: %+v from %v", s, read)
		}
	}
	// A missing named file is an error; missing default files are not.
	if _, _, err := Load(Options{File: filepath.Join(dir, "missing.yaml")}); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing named file: %v", err)
	}
	s, read, err = Load(Options{SystemFile: filepath.Join(dir, "no1"), UserFile: filepath.Join(dir, "no2"), Getenv: env(nil)})
	if err != nil || len(read) != 0 || !reflect.DeepEqual(s, Site{}) {
		t.Errorf("no files: %+v %v %v", s, read, err)
	}
}

func TestUserFile(t *testing.T) {
	if got := UserFile(env(map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"})); got != "/x/snapbuild/site.yaml" {
		t.Errorf("XDG: %s", got)
	}
	if got := UserFile(env(map[string]string{"HOME": "/h"})); got != "/h/.config/snapbuild/site.yaml" {
		t.Errorf("HOME: %s", got)
	}
}

// TestBadFiles: errors name the file, the line and the key, and unknown
// keys list the known ones.
func TestBadFiles(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"pip_index: http://x/simple\n", `f.yaml:1: unknown key "pip_index" (known keys: conda_channel_alias, debian_mirror, env, micromamba_image, pip_extra_index_urls, pip_index_url, pip_trusted_hosts, python_standalone_dir, registries_conf, uv_extra_index_urls, uv_image, uv_index_url, uv_insecure_hosts)`},
		{"pip_index_url: [a]\n", "f.yaml:1: pip_index_url: want a string"},
		{"pip_index_url: 3\n", "f.yaml:1: pip_index_url: want a string"},
		{"\npip_index_url: mirror.internal/simple\n", `f.yaml:2: pip_index_url: "mirror.internal/simple": want an absolute http://, https:// or file:// URL`},
		{"pip_index_url: 127.0.0.1:8765/simple\n", `f.yaml:1: pip_index_url: "127.0.0.1:8765/simple": want an absolute http://, https:// or file:// URL (`},
		{"pip_extra_index_urls: {a: b}\n", "f.yaml:1: pip_extra_index_urls: want a list of strings"},
		{"pip_trusted_hosts: [http://h.internal]\n", `pip_trusted_hosts: "http://h.internal": want a host name`},
		{"registries_conf: relative.conf\n", `registries_conf: "relative.conf": give an absolute path`},
		{"uv_image: ghcr.io/astral-sh/uv:latest\n", `uv_image: "ghcr.io/astral-sh/uv:latest": want an image repository without tag or digest`},
		{"env: {1BAD: x}\n", `env: "1BAD" is not a variable name`},
		{"env: {PIP_NO_CACHE_DIR: }\n", "env: PIP_NO_CACHE_DIR: want a value"},
		{"env: [a]\n", "env: want a mapping"},
		{"- pip_index_url: http://x\n", "f.yaml:1: a site configuration is a mapping of keys"},
		{"pip_index_url: [\n", "f.yaml: not valid YAML"},
		{"debian_mirror: http://a\ndebian_mirror: http://b\n", `f.yaml:2: key "debian_mirror" given twice`},
	} {
		var s Site
		err := s.Apply("f.yaml", []byte(c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.body, err, c.want)
		}
		if !reflect.DeepEqual(s, Site{}) {
			t.Errorf("%q: a bad file changed the site: %+v", c.body, s)
		}
	}
	for _, body := range []string{"", "# nothing\n", "---\n", "~\n"} {
		var s Site
		if err := s.Apply("f.yaml", []byte(body)); err != nil || !reflect.DeepEqual(s, Site{}) {
			t.Errorf("%q: %v %+v", body, err, s)
		}
	}
	// Load names the file too.
	p := write(t, t.TempDir(), "site.yaml", "pip_index: x\n")
	if _, _, err := Load(Options{File: p}); err == nil || !strings.HasPrefix(err.Error(), p+":1: unknown key") {
		t.Errorf("Load: %v", err)
	}
}

// TestStepEnv: uv follows pip unless set; lists are space-separated; env
// wins.
func TestStepEnv(t *testing.T) {
	s := Site{
		PipIndexURL:       "http://m.internal/simple",
		PipExtraIndexURLs: []string{"http://m.internal/a", "http://m.internal/b"},
		PipTrustedHosts:   []string{"m.internal", "n.internal:8080"},
		CondaChannelAlias: "http://m.internal/conda",
		DebianMirror:      "http://m.internal/debian", // not a step variable
		Env:               map[string]string{"HTTPS_PROXY": "http://p:3128", "PIP_TRUSTED_HOST": "other"},
	}
	want := []string{
		"CONDA_CHANNEL_ALIAS=http://m.internal/conda",
		"HTTPS_PROXY=http://p:3128",
		"MAMBA_CHANNEL_ALIAS=http://m.internal/conda",
		"PIP_EXTRA_INDEX_URL=http://m.internal/a http://m.internal/b",
		"PIP_INDEX_URL=http://m.internal/simple",
		"PIP_TRUSTED_HOST=other",
		"UV_EXTRA_INDEX_URL=http://m.internal/a http://m.internal/b",
		"UV_INDEX_URL=http://m.internal/simple",
		"UV_INSECURE_HOST=m.internal n.internal:8080",
	}
	if got := s.StepEnv(); !reflect.DeepEqual(got, want) {
		t.Errorf("StepEnv:\n%q\nwant\n%q", got, want)
	}
	s = Site{PipIndexURL: "http://pip/simple", UvIndexURL: "http://uv/simple", UvExtraIndexURLs: []string{"http://uv/extra"}, PipTrustedHosts: []string{"pip"}, UvInsecureHosts: []string{"uv"}}
	want = []string{"PIP_INDEX_URL=http://pip/simple", "PIP_TRUSTED_HOST=pip", "UV_EXTRA_INDEX_URL=http://uv/extra", "UV_INDEX_URL=http://uv/simple", "UV_INSECURE_HOST=uv"}
	if got := s.StepEnv(); !reflect.DeepEqual(got, want) {
		t.Errorf("uv set apart:\n%q\nwant\n%q", got, want)
	}
	if got := (Site{}).StepEnv(); len(got) != 0 {
		t.Errorf("zero Site: %q", got)
	}
}

func TestValidate(t *testing.T) {
	good := Site{PipIndexURL: "https://devpi.internal/root/pypi/+simple/", PipTrustedHosts: []string{"[::1]:3141", "10.0.0.1"},
		UvImage: "registry.internal:5000/astral-sh/uv", MicromambaImage: "mambaorg/micromamba", PythonStandaloneDir: "/srv/pbs",
		CondaChannelAlias: "file:///srv/conda"}
	if err := good.Validate(); err != nil {
		t.Error(err)
	}
	if err := (Site{UvIndexURL: "http://a b"}).Validate(); err == nil || !strings.Contains(err.Error(), "site configuration: uv_index_url:") {
		t.Errorf("bad uv_index_url: %v", err)
	}
}
