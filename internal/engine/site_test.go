package engine

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/snapbuild/snapbuild/internal/modal"
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

func siteBuilder(t *testing.T, opts ...Option) *Engine {
	t.Helper()
	b := &Engine{network: sandbox.NetworkHost, epoch: DefaultEpoch}
	for _, o := range opts {
		if err := o(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.share(); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStepKeyIgnoresSite: a site's mirrors (any of them, or two different
// sites) leave the cache keys of RUN and run_function steps as they are,
// since the site's step environment is the worker's default environment,
// outside the ops; what is an input (the network, the security mode, a
// build env name) still changes them. The keys are those a dry run (Plan) computes.
func TestStepKeyIgnoresSite(t *testing.T) {
	t.Setenv("MODAL_IMAGE_BUILDER_VERSION", "")
	other := fullSite
	other.PipIndexURL, other.Env = "http://mirror-b.internal/simple", map[string]string{"PIP_NO_CACHE_DIR": "1"}
	keys := func(b *Engine, env map[string]string) (run, fn string) {
		t.Helper()
		ub := uBuilder(t)
		b.store, b.progress = ub.store, ub.progress
		base := uStubBase(t, b)
		img := FromID(base).RunCommands([]string{"python -m pip install snapapp"}, BuildEnv(env))
		p, err := b.Plan(context.Background(), img.layers)
		if err != nil {
			t.Fatal(err)
		}
		run = p.Layers[1].Steps[0].Key
		p, err = b.Plan(context.Background(), FromID(base).RunFunction(modal.Function{Pickled: []byte("fn")}, modal.FunctionCall{}, BuildEnv(env)).layers)
		if err != nil {
			t.Fatal(err)
		}
		fn = p.Layers[1].Steps[0].Key
		if run == "" || fn == "" {
			t.Fatalf("no keys in the plans: run %q, run_function %q", run, fn)
		}
		return run, fn
	}
	run0, fn0 := keys(siteBuilder(t), nil)
	for name, b := range map[string]*Engine{
		"site a":    siteBuilder(t, WithSite(fullSite)),
		"site b":    siteBuilder(t, WithSite(other)),
		"step env":  siteBuilder(t, WithStepEnv("PIP_INDEX_URL=http://x/simple", "UV_INDEX_URL=http://x/simple")),
		"tool repo": siteBuilder(t, WithToolImage(UvImageRepository, "localhost:5000/uv")),
	} {
		if len(b.stepEnv) == 0 && name != "tool repo" {
			t.Fatalf("%s: no step env", name)
		}
		if run, fn := keys(b, nil); run != run0 || fn != fn0 {
			t.Errorf("%s changed the keys: RUN %v, run_function %v", name, run != run0, fn != fn0)
		}
	}
	runNone, fnNone := keys(siteBuilder(t, WithSite(fullSite), WithNetwork(sandbox.NetworkNone)), nil)
	if runNone == run0 || fnNone == fn0 {
		t.Errorf("the network no longer changes the keys: RUN %v, run_function %v", runNone == run0, fnNone == fn0)
	}
	if run, fn := keys(siteBuilder(t, WithSite(fullSite), WithNetwork(sandbox.NetworkPrivate)), nil); run == run0 || fn == fn0 || run == runNone || fn == fnNone {
		t.Errorf("--network private shares keys: with host RUN %v, run_function %v; with none RUN %v, run_function %v", run == run0, fn == fn0, run == runNone, fn == fnNone)
	}
	if run, fn := keys(siteBuilder(t, WithSecurity(sandbox.SecurityInsecure)), nil); run == run0 || fn == fn0 {
		t.Errorf("--security insecure does not change the keys: RUN %v, run_function %v", run == run0, fn == fn0)
	}
	if run, fn := keys(siteBuilder(t), map[string]string{"TOKEN": "x"}); run == run0 || fn == fn0 {
		t.Errorf("a build env name no longer changes the keys: RUN %v, run_function %v", run == run0, fn == fn0)
	}
}

// TestSiteEnv: every step gets the site's variables and SOURCE_DATE_EPOCH
// where its own environment does not set them (the worker's default env).
func TestSiteEnv(t *testing.T) {
	b := siteBuilder(t, WithSite(fullSite), WithStepEnv("FROM_ARG=site"))
	want := []string{
		"CONDA_CHANNEL_ALIAS=http://mirror-a.internal/conda",
		"FROM_ARG=site",
		"HTTPS_PROXY=http://proxy:3128",
		"MAMBA_CHANNEL_ALIAS=http://mirror-a.internal/conda",
		"PIP_EXTRA_INDEX_URL=http://mirror-a.internal/extra",
		"PIP_INDEX_URL=http://mirror-a.internal/simple",
		"PIP_TRUSTED_HOST=mirror-a.internal",
		"SOURCE_DATE_EPOCH=315532800",
		"UV_EXTRA_INDEX_URL=http://mirror-a.internal/extra",
		"UV_INDEX_URL=http://mirror-a.internal/uv",
		"UV_INSECURE_HOST=mirror-a.internal",
	}
	got := slices.Sorted(slices.Values(b.siteEnv()))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("site env:\n%q\nwant\n%q", got, want)
	}
	if got := siteBuilder(t).siteEnv(); !reflect.DeepEqual(got, []string{"SOURCE_DATE_EPOCH=315532800"}) {
		t.Errorf("no site: %q", got)
	}
}

func TestWithSiteSettings(t *testing.T) {
	b := siteBuilder(t, WithSite(fullSite))
	if b.mirror != fullSite.DebianMirror || b.PythonStandaloneDir() != "/srv/pbs" {
		t.Errorf("mirror %q, python dir %q", b.mirror, b.PythonStandaloneDir())
	}
	for ref, want := range map[string]string{
		"ghcr.io/astral-sh/uv:latest":             "registry.internal/astral-sh/uv:latest",
		"ghcr.io/astral-sh/uv:0.8.0":              "registry.internal/astral-sh/uv:0.8.0",
		"mambaorg/micromamba:2.1.1-debian12-slim": "registry.internal/mambaorg/micromamba:2.1.1-debian12-slim",
		"docker.io/mambaorg/micromamba:1":         "registry.internal/mambaorg/micromamba:1",
		"ghcr.io/astral-sh/uv@sha256:" + hex64():  "registry.internal/astral-sh/uv@sha256:" + hex64(),
		"ghcr.io/astral-sh/uvx:latest":            "ghcr.io/astral-sh/uvx:latest",
		"python:3.11":                             "python:3.11",
		"im-0000000000000000000000":               "im-0000000000000000000000",
		"oci:/srv/layout:uv":                      "oci:/srv/layout:uv",
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
		if err := c.o(&Engine{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}

func hex64() string { return strings.Repeat("ab", 32) }
