package integration

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// wheel writes a pure-Python wheel for package name (importable as
// strings.ReplaceAll(name, "-", "_")) whose module holds VALUE = value, with
// the given Requires-Dist lines, into dir; it returns the file name.
func wheel(t *testing.T, dir, name, version, value string, requires ...string) string {
	t.Helper()
	mod := strings.ReplaceAll(name, "-", "_")
	file := fmt.Sprintf("%s-%s-py3-none-any.whl", mod, version)
	f, err := os.Create(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z := zip.NewWriter(f)
	info := fmt.Sprintf("%s-%s.dist-info", mod, version)
	meta := fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", name, version)
	for _, r := range requires {
		meta += "Requires-Dist: " + r + "\n"
	}
	for n, content := range map[string]string{
		mod + "/__init__.py":    fmt.Sprintf("VALUE = %q\n", value),
		info + "/METADATA":      meta,
		info + "/WHEEL":         "Wheel-Version: 1.0\nGenerator: snapbuild-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
		info + "/RECORD":        "",
		info + "/top_level.txt": mod + "\n",
	} {
		w, err := z.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(content))
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return file
}

// packageIndex serves wheels as a PEP 503 "simple" index on 127.0.0.1 and
// returns its URL (".../simple"); the wheels are served as PyPI serves
// them, cacheable for a year.
func packageIndex(t *testing.T, wheels map[string][]string) string {
	t.Helper()
	root := t.TempDir()
	files := filepath.Join(root, "files")
	os.MkdirAll(files, 0o755)
	for project, ws := range wheels {
		var links strings.Builder
		for _, w := range ws {
			b, err := os.ReadFile(w)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b)
			os.WriteFile(filepath.Join(files, filepath.Base(w)), b, 0o644)
			fmt.Fprintf(&links, "<a href=\"../../files/%s#sha256=%s\">%s</a>\n", filepath.Base(w), hex.EncodeToString(sum[:]), filepath.Base(w))
		}
		d := filepath.Join(root, "simple", project)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "index.html"), []byte("<!DOCTYPE html><html><body>\n"+links.String()+"</body></html>\n"), 0o644)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fileServer := http.FileServer(http.Dir(root))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/files/") {
			// A file of an index never changes: PyPI says so, and pip
			// keeps what it downloads in its cache for that long.
			w.Header().Set("Cache-Control", "max-age=365000000, immutable, public")
		}
		fileServer.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/simple"
}

// TestInstallers installs from a local package index with pip_install,
// pip_install_from_requirements and pip_install_from_pyproject, and runs
// uv_pip_install and micromamba against stand-in tools provided as images
// (the real uv and micromamba binaries cannot be had offline).
func TestInstallers(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	dir := t.TempDir()
	whl := t.TempDir()
	dep := wheel(t, whl, "snapdep", "1.0", "dep-ok")
	app := wheel(t, whl, "snapapp", "2.0", "app-ok", "snapdep>=1.0")
	extra := wheel(t, whl, "snapextra", "0.1", "extra-ok")
	index := packageIndex(t, map[string][]string{
		"snapdep": {filepath.Join(whl, dep)}, "snapapp": {filepath.Join(whl, app)}, "snapextra": {filepath.Join(whl, extra)},
	})
	os.WriteFile(filepath.Join(dir, "requirements.txt"), []byte("snapextra==0.1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "pyproject.toml"), []byte(`[project]
name = "demo"
version = "0"
dependencies = ["snapapp"]
[project.optional-dependencies]
more = ["snapextra"]
`), 0o644)
	recipe := writeRecipe(t, dir, "pips.yaml", fmt.Sprintf(`
- debian_slim: {}
- pip_install: {packages: [snapapp], index_url: %q}
- pip_install_from_requirements: {requirements_txt: requirements.txt, index_url: %q}
- run_commands: ["python -m pip uninstall -y snapapp snapdep snapextra"]
- pip_install_from_pyproject: {pyproject_toml: pyproject.toml, optional_dependencies: [more], index_url: %q}
`, index, index, index))
	r := runner{t: t, root: rootDir}
	r.build(recipe)
	out := r.ok("run", "pips", "python", "-c", "import snapapp, snapdep, snapextra; print(snapapp.VALUE, snapdep.VALUE, snapextra.VALUE)")
	if out.stdout != "app-ok dep-ok extra-ok\n" {
		t.Errorf("installed packages: %q", out.stdout)
	}
	if out := r.ok("run", "pips", "cat", "/.requirements.txt"); out.stdout != "snapextra==0.1\n" {
		t.Errorf("/.requirements.txt = %q", out.stdout)
	}

	// poetry from Debian (python3-poetry), poetry_version=None: the project's
	// dependency comes from the local index, declared as a poetry source.
	// Modal's command passes --compile, which bookworm's poetry 1.3 lacks:
	// trixie's (Python 3.13) has it.
	os.MkdirAll(filepath.Join(dir, "poetry"), 0o755)
	os.WriteFile(filepath.Join(dir, "poetry", "pyproject.toml"), []byte(`[tool.poetry]
name = "demo"
version = "0.1.0"
description = ""
authors = ["Snap Build <snap@example.com>"]

[tool.poetry.dependencies]
python = "^3.13"
snapapp = "2.0"

[[tool.poetry.source]]
name = "local"
url = "`+index+`/"
priority = "primary"

[build-system]
requires = ["poetry-core"]
build-backend = "poetry.core.masonry.api"
`), 0o644)
	poetry := writeRecipe(t, dir, "poetry.yaml", `
- debian_slim: {python_version: "3.13"}
- apt_install: [python3-poetry]
- poetry_install_from_file: {poetry_pyproject_toml: poetry/pyproject.toml, poetry_version: null, ignore_lockfile: true}
`)
	r.build(poetry)
	if out := r.ok("run", "poetry", "python", "-c", "import snapapp, snapdep; print(snapapp.VALUE, snapdep.VALUE)"); out.stdout != "app-ok dep-ok\n" {
		t.Errorf("poetry installed: %q", out.stdout)
	}

	// uv: a stand-in binary in an image named as Modal's uv image. It
	// records its arguments in /uv-args-<subcommand> and installs with pip
	// from the same index: "uv pip install" into the system Python, "uv
	// sync" into a venv at <project>/.venv, as uv does.
	uvDir := t.TempDir()
	os.WriteFile(filepath.Join(uvDir, "uv"), []byte(`#!/bin/sh
set -e
printf '%s\n' "$@" > /uv-args-$1
case "$1" in
pip) exec python -m pip install --no-cache-dir --index-url `+index+` snapapp ;;
sync)
	project=$(printf '%s\n' "$@" | sed -n 's/^--project=//p')
	test -f "$project/pyproject.toml"
	python -m venv "$project/.venv"
	exec "$project/.venv/bin/python" -m pip install --no-cache-dir --index-url `+index+` snapapp ;;
esac
exit 2
`), 0o755)
	tools := writeRecipe(t, uvDir, "tools.yaml", `
ghcr.io/astral-sh/uv:latest:
  - from_scratch: {}
  - add_local_file: {local_path: uv, remote_path: /uv, copy: true}
`)
	// Without the tool image the build fails before any step runs.
	uvRecipe := writeRecipe(t, dir, "uv.yaml", `
- debian_slim: {}
- uv_pip_install: {packages: [snapapp, "snapdep>=1"], index_url: "`+index+`"}
`)
	fresh := runner{t: t, root: filepath.Join(t.TempDir(), "store")}
	res := fresh.run("", "build", uvRecipe, "--progress", "plain")
	if res.code == 0 || !strings.Contains(res.stderr, `image "ghcr.io/astral-sh/uv:latest" is not in the store and could not be pulled`) ||
		!strings.Contains(res.stderr, "blocked") ||
		strings.Contains(res.stderr, "#1 [1/") {
		t.Errorf("uv without its image: exit %d\n%s", res.code, tail(res.stderr, 6))
	}
	r.ok("build", tools)
	r.build(uvRecipe)
	args := r.ok("run", "uv", "cat", "/uv-args-pip").stdout
	wantArgs := "pip\ninstall\n--python\n/usr/bin/python\n--compile-bytecode\n--index-url\n" + index + "\nsnapapp\nsnapdep>=1\n"
	if args != wantArgs {
		t.Errorf("uv was called with:\n%s\nwant:\n%s", args, wantArgs)
	}
	if out := r.ok("run", "uv", "sh", "-c", "ls -l /.uv/uv && python -c 'import snapapp; print(snapapp.VALUE)'"); !strings.Contains(out.stdout, "app-ok") {
		t.Errorf("uv step: %s", out.stdout)
	}

	// uv_sync: the project's pyproject.toml and uv.lock are copied to /.uv,
	// uv syncs there (--frozen since a lock exists), and /.uv/.venv/bin
	// leads PATH in the image.
	os.MkdirAll(filepath.Join(dir, "uvproj"), 0o755)
	os.WriteFile(filepath.Join(dir, "uvproj", "pyproject.toml"), []byte(`[project]
name = "uvdemo"
version = "0"
dependencies = ["snapapp"]
[dependency-groups]
dev = []
`), 0o644)
	os.WriteFile(filepath.Join(dir, "uvproj", "uv.lock"), []byte("version = 1\n"), 0o644)
	syncRecipe := writeRecipe(t, dir, "uvsync.yaml", `
- debian_slim: {}
- uv_sync: {uv_project_dir: uvproj, groups: [dev], extra_options: --no-cache}
`)
	r.build(syncRecipe)
	args = r.ok("run", "uvsync", "cat", "/uv-args-sync").stdout
	if want := "sync\n--project=/.uv\n--no-install-workspace\n--compile-bytecode\n--group=dev\n--no-cache\n--frozen\n"; args != want {
		t.Errorf("uv sync was called with:\n%s\nwant:\n%s", args, want)
	}
	out = r.ok("run", "uvsync", "sh", "-c", `echo "$PATH"; cat /.uv/uv.lock; command -v python; python -c 'import snapapp; print(snapapp.VALUE)'; /usr/bin/python -c 'import snapapp' 2>&1 || echo not-in-system`)
	for _, want := range []string{"/.uv/.venv/bin:", "version = 1", "/.uv/.venv/bin/python", "app-ok", "not-in-system"} {
		if !strings.Contains(out.stdout, want) {
			t.Errorf("uv_sync image lacks %q:\n%s", want, out.stdout)
		}
	}

	// micromamba: a stand-in base named as Modal's micromamba image, with the
	// SHELL wrapper the real one has; RUN lines go through it.
	mmDir := t.TempDir()
	os.WriteFile(filepath.Join(mmDir, "_dockerfile_shell.sh"), []byte("#!/bin/sh\necho \"$@\" >> /shell-log\nexec /bin/sh -c \"$@\"\n"), 0o755)
	os.WriteFile(filepath.Join(mmDir, "micromamba"), []byte("#!/bin/sh\necho \"micromamba $*\" >> /micromamba-log\n"), 0o755)
	mmTools := writeRecipe(t, mmDir, "mm.yaml", `
mambaorg/micromamba:2.1.1-debian12-slim:
  - debian_slim: {}
  - add_local_file: {local_path: _dockerfile_shell.sh, remote_path: /usr/local/bin/_dockerfile_shell.sh, copy: true}
  - add_local_file: {local_path: micromamba, remote_path: /usr/local/bin/micromamba, copy: true}
`)
	r.ok("build", mmTools)
	mm := writeRecipe(t, dir, "mamba.yaml", `
- micromamba: {python_version: "3.11"}
- micromamba_install: {packages: [numpy, "scipy<2"], channels: [conda-forge]}
`)
	r.build(mm)
	log := r.ok("run", "mamba", "cat", "/micromamba-log", "/shell-log").stdout
	for _, want := range []string{
		"micromamba install -n base -y python=3.11 pip -c conda-forge",
		"micromamba install numpy scipy<2 -c conda-forge --yes",
		"micromamba install numpy 'scipy<2' -c conda-forge --yes", // as the shell wrapper saw it
	} {
		if !strings.Contains(log, want) {
			t.Errorf("micromamba log lacks %q:\n%s", want, log)
		}
	}
	cfg := r.ok("inspect", "mamba").stdout
	if !strings.Contains(cfg, "MAMBA_DOCKERFILE_ACTIVATE=1") || !strings.Contains(cfg, `"172800"`) {
		t.Errorf("micromamba config:\n%s", cfg)
	}
}
