package snapbuild

import (
	"reflect"
	"strings"
	"testing"

	"github.com/snapbuild/snapbuild/sandbox"
	"github.com/snapbuild/snapbuild/siteconfig"
)

// fullSite sets every mirror a site can set.
var fullSite = siteconfig.Site{
	PipIndexURL:         "http://mirror-a.internal/simple",
	PipExtraIndexURLs:   []string{"http://mirror-a.internal/extra"},
	PipTrustedHosts:     []string{"mirror-a.internal"},
	UvIndexURL:          "http://mirror-a.internal/uv",
	CondaChannelAlias:   "http://mirror-a.internal/conda",
	DebianMirror:        "http://mirror-a.internal/debian",
	PythonStandaloneDir: "/srv/pbs",
	UvImage:             "registry.internal/astral-sh/uv",
	MicromambaImage:     "registry.internal/mambaorg/micromamba",
	Env:                 map[string]string{"HTTPS_PROXY": "http://proxy:3128"},
}

func siteBuilder(t *testing.T, opts ...Option) *Builder {
	t.Helper()
	b := &Builder{network: sandbox.NetworkHost, epoch: DefaultEpoch}
	for _, o := range opts {
		if err := o(b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// TestStepKeyIgnoresSite: a site's mirrors (any of them, or two different
// sites) leave the cache keys of RUN and run_function steps as they are,
// while what is an input (the network) still changes them.
func TestStepKeyIgnoresSite(t *testing.T) {
	other := fullSite
	other.PipIndexURL, other.Env = "http://mirror-b.internal/simple", map[string]string{"PIP_NO_CACHE_DIR": "1"}
	plain := siteBuilder(t)
	in := instruction{text: "RUN python -m pip install snapapp"}
	args := []string{"A=1"}
	run0 := plain.runKey(uKeyState(), uKeyLayer(), in, args)
	fn0 := plain.functionKey(uKeyState(), uKeyLayer(), in, "fn")
	for name, b := range map[string]*Builder{
		"site a":    siteBuilder(t, WithSite(fullSite)),
		"site b":    siteBuilder(t, WithSite(other)),
		"step env":  siteBuilder(t, WithStepEnv("PIP_INDEX_URL=http://x/simple", "UV_INDEX_URL=http://x/simple")),
		"tool repo": siteBuilder(t, WithToolImage(UvImageRepository, "localhost:5000/uv")),
	} {
		if len(b.stepEnv) == 0 && name != "tool repo" {
			t.Fatalf("%s: no step env", name)
		}
		if k := b.runKey(uKeyState(), uKeyLayer(), in, args); k != run0 {
			t.Errorf("%s changed the RUN key", name)
		}
		if k := b.functionKey(uKeyState(), uKeyLayer(), in, "fn"); k != fn0 {
			t.Errorf("%s changed the run_function key", name)
		}
	}
	offline := siteBuilder(t, WithSite(fullSite), WithNetwork(sandbox.NetworkNone))
	if offline.runKey(uKeyState(), uKeyLayer(), in, args) == run0 || offline.functionKey(uKeyState(), uKeyLayer(), in, "fn") == fn0 {
		t.Error("the network no longer changes the keys")
	}
	if plain.runKey(uKeyState(), uKeyLayer(), in, []string{"A=2"}) == run0 {
		t.Error("ARG values no longer change the RUN key")
	}
}

// TestStepEnviron: the image's ENV wins over ARGs, which win over the
// site's variables; SOURCE_DATE_EPOCH and PATH are filled in.
func TestStepEnviron(t *testing.T) {
	b := siteBuilder(t, WithSite(fullSite), WithStepEnv("FROM_ARG=site", "SOURCE_DATE_EPOCH=1"))
	st := &buildState{}
	st.config.Env = []string{"PIP_INDEX_URL=http://image.internal/simple", "LANG=C.UTF-8"}
	got := b.stepEnviron(st, []string{"FROM_ARG=arg", "PIP_INDEX_URL=http://arg/simple"})
	want := []string{
		"PIP_INDEX_URL=http://image.internal/simple", "LANG=C.UTF-8",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"FROM_ARG=arg",
		"CONDA_CHANNEL_ALIAS=http://mirror-a.internal/conda",
		"HTTPS_PROXY=http://proxy:3128",
		"MAMBA_CHANNEL_ALIAS=http://mirror-a.internal/conda",
		"PIP_EXTRA_INDEX_URL=http://mirror-a.internal/extra",
		"PIP_TRUSTED_HOST=mirror-a.internal",
		"UV_EXTRA_INDEX_URL=http://mirror-a.internal/extra",
		"UV_INDEX_URL=http://mirror-a.internal/uv",
		"UV_INSECURE_HOST=mirror-a.internal",
		"SOURCE_DATE_EPOCH=1",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("step environment:\n%q\nwant\n%q", got, want)
	}
	if st.config.Env[0] != "PIP_INDEX_URL=http://image.internal/simple" || len(st.config.Env) != 2 {
		t.Errorf("the image's config changed: %q", st.config.Env)
	}
	// Without a site, only the image, ARGs, PATH and the epoch.
	got = siteBuilder(t).stepEnviron(&buildState{}, nil)
	if want := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SOURCE_DATE_EPOCH=315532800"}; !reflect.DeepEqual(got, want) {
		t.Errorf("no site: %q", got)
	}
}

func TestWithSiteSettings(t *testing.T) {
	b := siteBuilder(t, WithSite(fullSite))
	if b.mirror != fullSite.DebianMirror || b.PythonStandaloneDir() != "/srv/pbs" {
		t.Errorf("mirror %q, python dir %q", b.mirror, b.PythonStandaloneDir())
	}
	for ref, want := range map[string]string{
		"ghcr.io/astral-sh/uv:latest":            "registry.internal/astral-sh/uv:latest",
		"ghcr.io/astral-sh/uv:0.8.0":             "registry.internal/astral-sh/uv:0.8.0",
		MicromambaImage:                          "registry.internal/mambaorg/micromamba:2.1.1-debian12-slim",
		"docker.io/mambaorg/micromamba:1":        "registry.internal/mambaorg/micromamba:1",
		"ghcr.io/astral-sh/uv@sha256:" + hex64(): "registry.internal/astral-sh/uv@sha256:" + hex64(),
		"ghcr.io/astral-sh/uvx:latest":           "ghcr.io/astral-sh/uvx:latest",
		"python:3.11":                            "python:3.11",
		"im-0000000000000000000000":              "im-0000000000000000000000",
		"oci:/srv/layout:uv":                     "oci:/srv/layout:uv",
	} {
		if got := b.toolRef(ref); got != want {
			t.Errorf("toolRef(%q) = %q, want %q", ref, got, want)
		}
	}
	if got := siteBuilder(t).toolRef("ghcr.io/astral-sh/uv:latest"); got != "ghcr.io/astral-sh/uv:latest" {
		t.Errorf("no site: %q", got)
	}
	// Later options override the site's.
	b = siteBuilder(t, WithSite(fullSite), WithDebianMirror("http://flag/debian"), WithStepEnv("PIP_INDEX_URL=http://flag/simple"))
	if b.mirror != "http://flag/debian" || !strings.Contains(strings.Join(b.StepEnv(), "\n"), "PIP_INDEX_URL=http://flag/simple") {
		t.Errorf("override: %q %q", b.mirror, b.StepEnv())
	}
	for _, c := range []struct {
		o    Option
		want string
	}{
		{WithSite(siteconfig.Site{PipIndexURL: "not a url"}), "site configuration: pip_index_url"},
		{WithStepEnv("NOEQUALS"), `WithStepEnv: "NOEQUALS": want KEY=VALUE`},
		{WithToolImage(UvImageRepository, "registry.internal/uv:1"), "want a repository without tag or digest"},
		{WithToolImage("ghcr.io/astral-sh/uv:latest", "registry.internal/uv"), `tool image "ghcr.io/astral-sh/uv:latest"`},
		{WithPythonStandaloneDir("rel"), "give an absolute path"},
	} {
		if err := c.o(&Builder{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}

func hex64() string { return strings.Repeat("ab", 32) }
