package registry

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

func TestPullEndpoints(t *testing.T) {
	conf, err := ParseConfig([]byte(`
unqualified-search-registries = ["docker.io"]
short-name-mode = "enforcing"

[[registry]]
prefix = "docker.io"
location = "registry-1.docker.io"
[[registry.mirror]]
location = "mirror.local:5000"
insecure = true
[[registry.mirror]]
location = "mirror2.local/hub"
pull-from-mirror = "digest-only"

[[registry]]
prefix = "docker.io/library/private"
location = "private.example.com/lib/private"
insecure = true

[[registry]]
location = "quay.io"
mirror-by-digest-only = true
[[registry.mirror]]
location = "quay-mirror.local"

[[registry]]
prefix = "*.corp.example"
[[registry.mirror]]
location = "corp-mirror.local/cache"

[[registry]]
prefix = "blocked.example.com/evil"
blocked = true

[aliases]
"x" = "docker.io/library/x"
`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"unqualified-search-registries", "short-name-mode", "aliases", "aliases.x"}; !slices.Equal(conf.Ignored, want) {
		t.Errorf("Ignored = %v, want %v", conf.Ignored, want)
	}
	dgst := "@sha256:" + strings.Repeat("cd", 32)
	for _, tc := range []struct {
		ref  string
		want []string // mirrors marked with "mirror "
		err  string
	}{
		{"ubuntu:22.04", []string{"mirror mirror.local:5000/library/ubuntu:22.04", "registry-1.docker.io/library/ubuntu:22.04"}, ""},
		{"ubuntu" + dgst, []string{"mirror mirror.local:5000/library/ubuntu" + dgst, "mirror mirror2.local/hub/library/ubuntu" + dgst, "registry-1.docker.io/library/ubuntu" + dgst}, ""},
		// The longest prefix wins; a prefix matches at a separator only.
		{"private:1", []string{"private.example.com/lib/private:1"}, ""},
		{"privateer:1", []string{"mirror mirror.local:5000/library/privateer:1", "registry-1.docker.io/library/privateer:1"}, ""},
		{"quay.io/a/b:1", []string{"quay.io/a/b:1"}, ""},
		{"quay.io/a/b" + dgst, []string{"mirror quay-mirror.local/a/b" + dgst, "quay.io/a/b" + dgst}, ""},
		{"git.corp.example/team/app:1", []string{"mirror corp-mirror.local/cache/team/app:1", "git.corp.example/team/app:1"}, ""},
		{"ghcr.io/a/b:1", []string{"ghcr.io/a/b:1"}, ""},
		{"blocked.example.com/evil/x:1", nil, "blocked"},
		{"blocked.example.com/good/x:1", []string{"blocked.example.com/good/x:1"}, ""},
	} {
		ref, err := name.ParseReference(tc.ref)
		if err != nil {
			t.Fatal(err)
		}
		eps, err := conf.pullEndpoints(ref, func(string) bool { return false })
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("pullEndpoints(%s) = %v, want error %q", tc.ref, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("pullEndpoints(%s) = %v", tc.ref, err)
			continue
		}
		var got []string
		for _, e := range eps {
			s := fullName(e.ref)
			if e.mirror {
				s = "mirror " + s
			}
			got = append(got, s)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("pullEndpoints(%s) = %q, want %q", tc.ref, got, tc.want)
		}
	}
	o, _ := makeOptions(WithRegistriesConfig(conf), WithInsecureRegistries("extra.local:443", "anyport.local"))
	for host, want := range map[string]bool{
		"mirror.local:5000": true, "mirror.local:5001": false, "private.example.com": true,
		"registry-1.docker.io": false, "extra.local:443": true, "extra.local": false,
		"anyport.local:8443": true, "anyport.local": true, "quay-mirror.local": false,
	} {
		if got := o.isInsecure(host); got != want {
			t.Errorf("isInsecure(%s) = %v, want %v", host, got, want)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ conf, want string }{
		{"[[registry]]\ninsecure = true\n", "neither prefix nor location"},
		{"[[registry]]\nlocation = \"https://x.io\"\n", "URL schemes are not supported"},
		{"[[registry]]\nprefix = \"*.x.io\"\nlocation = \"y.io\"\n", "wildcard prefix takes no location"},
		{"[[registry]]\nlocation = \"x.io\"\n[[registry.mirror]]\ninsecure = true\n", "no location"},
		{"[[registry]]\nlocation = \"x.io\"\n[[registry.mirror]]\nlocation = \"m\"\npull-from-mirror = \"sometimes\"\n", "pull-from-mirror"},
		{"[[registry]\n", "toml"},
	} {
		if _, err := ParseConfig([]byte(tc.conf)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConfig(%q) = %v, want an error saying %q", tc.conf, err, tc.want)
		}
	}
}

func TestLoadFirstConfig(t *testing.T) {
	dir := t.TempDir()
	user, system := filepath.Join(dir, "user.conf"), filepath.Join(dir, "system.conf")
	os.WriteFile(system, []byte("[[registry]]\nlocation = \"system.io\"\n"), 0o644)
	c, err := LoadFirstConfig(user, system)
	if err != nil || c.Source != system || len(c.Registries) != 1 {
		t.Errorf("LoadFirstConfig(missing, system) = %+v, %v; want the system file", c, err)
	}
	os.WriteFile(user, []byte("[[registry]]\nlocation = \"user.io\"\n[[registry]]\nlocation = \"u2.io\"\n"), 0o644)
	if c, err = LoadFirstConfig(user, system); err != nil || c.Source != user || len(c.Registries) != 2 {
		t.Errorf("LoadFirstConfig(user, system) = %+v, %v; want only the user file", c, err)
	}
	if c, err = LoadFirstConfig(filepath.Join(dir, "none")); err != nil || len(c.Registries) != 0 {
		t.Errorf("LoadFirstConfig(none) = %+v, %v; want an empty config", c, err)
	}
	os.WriteFile(user, []byte("[[registry]\n"), 0o644)
	if _, err = LoadFirstConfig(user, system); err == nil || !strings.Contains(err.Error(), user) {
		t.Errorf("LoadFirstConfig(bad) = %v, want an error naming %s", err, user)
	}
	t.Setenv("CONTAINERS_REGISTRIES_CONF", system)
	if p := DefaultConfigPaths(); !slices.Equal(p, []string{system}) {
		t.Errorf("DefaultConfigPaths() with CONTAINERS_REGISTRIES_CONF = %v", p)
	}
	t.Setenv("CONTAINERS_REGISTRIES_CONF", "")
	t.Setenv("HOME", dir)
	if p := DefaultConfigPaths(); !slices.Equal(p, []string{filepath.Join(dir, ".config/containers/registries.conf"), "/etc/containers/registries.conf"}) {
		t.Errorf("DefaultConfigPaths() = %v", p)
	}
}

func TestAuthFileKeychain(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	enc := func(u, p string) string { return base64.StdEncoding.EncodeToString([]byte(u + ":" + p)) }
	os.WriteFile(a, []byte(`{"auths":{"quay.io/team":{"auth":"`+enc("team", "t-pass")+`"},"https://index.docker.io/v1/":{"auth":"`+enc("hub", "h-pass")+`"}}}`), 0o600)
	os.WriteFile(b, []byte(`{"auths":{"quay.io":{"username":"any","password":"a-pass"},"ghcr.io":{"auth":"`+enc("gh", "g-pass")+`"}}}`), 0o600)
	kc := AuthFileKeychain(filepath.Join(dir, "missing.json"), a, b)
	for _, tc := range []struct{ repo, user string }{
		{"quay.io/team/app", "team"},
		{"quay.io/other/app", "any"},
		{"ubuntu", "hub"},
		{"ghcr.io/x/y", "gh"},
		{"example.com/x", ""},
	} {
		ref, _ := name.NewRepository(tc.repo)
		auth, err := kc.Resolve(ref)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := auth.Authorization()
		if tc.user == "" {
			if auth != authn.Anonymous {
				t.Errorf("Resolve(%s) = %+v, want anonymous", tc.repo, cfg)
			}
			continue
		}
		if cfg.Username != tc.user {
			t.Errorf("Resolve(%s) = user %q, want %q", tc.repo, cfg.Username, tc.user)
		}
	}
	os.WriteFile(a, []byte(`{"auths":`), 0o600)
	ref, _ := name.NewRepository("quay.io/team/app")
	if _, err := kc.Resolve(ref); err == nil || !strings.Contains(err.Error(), a) {
		t.Errorf("Resolve with a broken file = %v, want an error naming %s", err, a)
	}
}

func TestConfigRedirected(t *testing.T) {
	c, err := ParseConfig([]byte(`
[[registry]]
prefix = "docker.io"
[[registry.mirror]]
location = "mirror.local:5000"
[[registry]]
prefix = "quay.io"
location = "quay.internal"
[[registry]]
prefix = "ghcr.io"
blocked = true
`))
	if err != nil {
		t.Skipf("ParseConfig: %v", err)
	}
	for ref, want := range map[string]bool{
		"python:3.11.12-slim-bookworm":                   true,
		"docker.io/library/python:3.11.12-slim-bookworm": true,
		"quay.io/x/y:1":   true,
		"ghcr.io/x/y:1":   false,
		"gcr.io/x/y:1":    false,
		"oci:/srv/layout": false,
	} {
		if got := c.Redirected(ref); got != want {
			t.Errorf("Redirected(%q) = %v, want %v", ref, got, want)
		}
	}
	if (*Config)(nil).Redirected("python:3.11") || (&Config{}).Redirected("python:3.11") {
		t.Error("an empty configuration redirects")
	}
}
