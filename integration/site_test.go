package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSiteMirrors builds unchanged definitions (pip_install with no index
// argument, as 107 of 135 real Modal files do) at a "site" whose package
// mirror is a local PEP 503 index named only in a site configuration file:
//
//   - the package installs from the mirror and imports in `snapbuild run`;
//     the mirror is nowhere in the image (config, history);
//   - a second site with another mirror URL (same wheels) gives the same
//     image ID in a fresh store, and finds every step cached in the first;
//   - a file's own index_url (pip's --index-url) and the image's own
//     PIP_INDEX_URL win over a site mirror that lacks the package, which
//     otherwise fails the build;
//   - uv_pip_install's uv (a stand-in, from the image the site's uv_image
//     names) and run_function see UV_* (following pip's settings unless set
//     apart) and the site's env.
//
// The real uv cannot be had offline: the stand-in records its arguments and
// environment and installs with pip from UV_INDEX_URL.
func TestSiteMirrors(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	dir := t.TempDir()
	whl := t.TempDir()
	dep := filepath.Join(whl, wheel(t, whl, "sitedep", "1.0", "dep-ok"))
	pkg := filepath.Join(whl, wheel(t, whl, "sitepkg", "1.0", "site-ok", "sitedep"))
	other := filepath.Join(whl, wheel(t, whl, "otherpkg", "1.0", "other"))
	mirrorA := packageIndex(t, map[string][]string{"sitepkg": {pkg}, "sitedep": {dep}})
	mirrorB := packageIndex(t, map[string][]string{"sitepkg": {pkg}, "sitedep": {dep}})
	lacking := packageIndex(t, map[string][]string{"otherpkg": {other}})
	site := func(name, index string, more string) string {
		return writeRecipe(t, dir, name, fmt.Sprintf("# a site's mirrors\npip_index_url: %s\npip_trusted_hosts: [127.0.0.1]\nenv:\n  PIP_NO_CACHE_DIR: \"1\"\n%s", index, more))
	}
	siteA, siteB, siteLacking := site("site-a.yaml", mirrorA, ""), site("site-b.yaml", mirrorB, ""), site("site-lacking.yaml", lacking, "")

	app := writeRecipe(t, dir, "siteapp.yaml", `
- debian_slim: {}
- pip_install: [sitepkg]
`)
	r := runner{t: t, root: rootDir}
	first := r.build(app, "--site-config", siteA)
	out := r.ok("run", "siteapp", "python", "-c", "import sitepkg, sitedep; print(sitepkg.VALUE, sitedep.VALUE)")
	if out.stdout != "site-ok dep-ok\n" {
		t.Errorf("installed from the site mirror: %q", out.stdout)
	}
	if cfg := r.ok("inspect", "siteapp").stdout; strings.Contains(cfg, "127.0.0.1") || strings.Contains(cfg, "PIP_") {
		t.Errorf("the site's mirror is in the image's config or history:\n%s", cfg)
	}
	if out := r.ok("run", "siteapp", "sh", "-c", "env | grep -c -e PIP_ -e UV_ || true").stdout; out != "0\n" {
		t.Errorf("the site's variables are in the image's environment: %q", out)
	}

	// Another site, another mirror URL: every step is cached here, and a
	// fresh store builds the same image.
	again := r.build(app, "--site-config", siteB)
	if again.ID != first.ID || again.Stats.ContainersStarted != 0 {
		t.Errorf("rebuilt with another mirror: %s (%d containers), first %s", again.ID, again.Stats.ContainersStarted, first.ID)
	}
	fresh := runner{t: t, root: filepath.Join(t.TempDir(), "store")}
	second := fresh.build(app, "--site-config", siteB)
	if second.ID != first.ID || second.Manifest != first.Manifest {
		t.Errorf("built with mirror B in a fresh store: %s %s; with mirror A: %s %s", second.ID, second.Manifest, first.ID, first.Manifest)
	}
	if out := fresh.ok("run", "siteapp", "python", "-c", "import sitepkg; print(sitepkg.VALUE)"); out.stdout != "site-ok\n" {
		t.Errorf("mirror B: %q", out.stdout)
	}

	// A mirror lacking the package fails an unchanged file; the file's own
	// index_url, or the image's own PIP_INDEX_URL, wins over it.
	// (Another package list: the step above is cached whatever the mirror.)
	both := writeRecipe(t, dir, "siteboth.yaml", `
- debian_slim: {}
- pip_install: [sitedep, sitepkg]
`)
	res := r.run("", "build", both, "--site-config", siteLacking, "--progress", "plain")
	if res.code == 0 || !strings.Contains(res.stderr, "No matching distribution found for sitedep") {
		t.Errorf("the site mirror lacking sitedep did not fail the build: exit %d\n%s", res.code, tail(res.stderr, 8))
	}
	// Flags override the file.
	r.build(both, "--site-config", siteLacking, "--pip-index-url", mirrorA)
	own := writeRecipe(t, dir, "siteown.yaml", fmt.Sprintf(`
- debian_slim: {}
- pip_install: {packages: [sitepkg], index_url: %q}
- env: {PIP_INDEX_URL: %q}
- run_commands: ["python -m pip uninstall -y sitepkg sitedep && python -m pip install sitepkg"]
`, mirrorA, mirrorA))
	r.build(own, "--site-config", siteLacking)
	if out := r.ok("run", "siteown", "python", "-c", "import sitepkg; print(sitepkg.VALUE)"); out.stdout != "site-ok\n" {
		t.Errorf("own index: %q", out.stdout)
	}

	// uv_pip_install and run_function: the stand-in uv comes from the
	// repository the site names for uv (ghcr.io is blocked for the tests).
	uvDir := t.TempDir()
	os.WriteFile(filepath.Join(uvDir, "uv"), []byte(`#!/bin/sh
set -e
printf '%s\n' "$@" > /uv-args
env | grep -e '^UV_' -e '^PIP_' | sort > /uv-env
exec python -m pip install --no-cache-dir --index-url "$UV_INDEX_URL" sitepkg
`), 0o755)
	tools := writeRecipe(t, uvDir, "sitetools.yaml", `
localhost/site-mirror/uv:0.1.0:
  - from_scratch: {}
  - add_local_file: {local_path: uv, remote_path: /uv, copy: true}
`)
	r.ok("build", tools)
	os.WriteFile(filepath.Join(dir, "envfn.py"), []byte(`import os

def record():
    with open("/fn-env", "w") as f:
        for k in sorted(os.environ):
            if k.startswith(("UV_", "PIP_", "MAMBA_", "CONDA_")):
                f.write(f"{k}={os.environ[k]}\n")
`), 0o644)
	uvApp := writeRecipe(t, dir, "siteuv.yaml", `
- debian_slim: {}
- uv_pip_install: {packages: [sitepkg], uv_version: 0.1.0}
- run_function: {source: envfn.py, function: record}
`)
	uvSite := site("site-uv.yaml", mirrorA, fmt.Sprintf("uv_extra_index_urls: [%s]\nconda_channel_alias: http://127.0.0.1:9/conda\nuv_image: localhost/site-mirror/uv\n", mirrorB))
	r.build(uvApp, "--site-config", uvSite)
	uvEnv := r.ok("run", "siteuv", "cat", "/uv-env").stdout
	// UV_CACHE_DIR and UV_LINK_MODE: uv_pip_install's package cache
	// (README "Package caches"), which the site leaves on.
	want := fmt.Sprintf("PIP_INDEX_URL=%s\nPIP_NO_CACHE_DIR=1\nPIP_TRUSTED_HOST=127.0.0.1\nUV_CACHE_DIR=/.snapbuild-cache/uv\nUV_EXTRA_INDEX_URL=%s\nUV_INDEX_URL=%s\nUV_INSECURE_HOST=127.0.0.1\nUV_LINK_MODE=copy\n", mirrorA, mirrorB, mirrorA)
	if uvEnv != want {
		t.Errorf("uv's environment:\n%s\nwant:\n%s", uvEnv, want)
	}
	if args := r.ok("run", "siteuv", "cat", "/uv-args").stdout; strings.Contains(args, "index") || !strings.HasSuffix(args, "--compile-bytecode\nsitepkg\n") {
		t.Errorf("uv's arguments (no index: it comes from the site):\n%s", args)
	}
	fnEnv := r.ok("run", "siteuv", "cat", "/fn-env").stdout
	if strings.Contains(fnEnv, "UV_CACHE_DIR=") || strings.Contains(fnEnv, "PIP_CACHE_DIR=") {
		t.Errorf("run_function got a package cache (only the installer methods' steps do):\n%s", fnEnv)
	}
	for _, w := range []string{"PIP_INDEX_URL=" + mirrorA, "UV_INDEX_URL=" + mirrorA, "MAMBA_CHANNEL_ALIAS=http://127.0.0.1:9/conda", "CONDA_CHANNEL_ALIAS=http://127.0.0.1:9/conda"} {
		if !strings.Contains(fnEnv, w+"\n") {
			t.Errorf("run_function's environment lacks %s:\n%s", w, fnEnv)
		}
	}
	if out := r.ok("run", "siteuv", "python", "-c", "import sitepkg; print(sitepkg.VALUE)"); out.stdout != "site-ok\n" {
		t.Errorf("uv stand-in installed: %q", out.stdout)
	}
}
