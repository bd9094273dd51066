package recipe

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/snapbuild/snapbuild"
)

// Each installer step parses to the commands of the same Go call.

// instRecipe writes files (path relative to a new recipe directory ->
// content) and returns the directory.
func instRecipe(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// instParse parses a one-image recipe in dir.
func instParse(t *testing.T, dir, src string) snapbuild.Image {
	t.Helper()
	imgs, err := Parse([]byte(src), dir, "default")
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror: %v", src, err)
	}
	if len(imgs) != 1 {
		t.Fatalf("got %d images", len(imgs))
	}
	return imgs[0].Image
}

func instParseErr(t *testing.T, dir, src string) string {
	t.Helper()
	_, err := Parse([]byte(src), dir, "default")
	if err == nil {
		t.Fatalf("Parse:\n%s\nno error", src)
	}
	return err.Error()
}

func instSame(t *testing.T, got, want snapbuild.Image) {
	t.Helper()
	if err := want.Err(); err != nil {
		t.Fatalf("reference image error: %v", err)
	}
	if !reflect.DeepEqual(got.Commands(), want.Commands()) {
		t.Errorf("commands:\n got  %q\n want %q", got.Commands(), want.Commands())
	}
}

func TestInstallStepsPip(t *testing.T) {
	dir := instRecipe(t, map[string]string{
		"requirements.txt": "numpy\n",
		"py/pyproject.toml": `[project]
dependencies = ["requests>=2", "numpy"]
[project.optional-dependencies]
test = ["pytest"]
`,
	})
	base := snapbuild.DebianSlim("3.11")
	full := snapbuild.PipOptions{FindLinks: "/wheels", IndexURL: "agi.se", ExtraIndexURL: "https://x/y?z=1&q", Pre: true, ExtraOptions: "--no-build-isolation"}

	img := instParse(t, dir, `
- debian_slim: "3.11"
- pip_install: {packages: [transformers==4.23.0, "torch~=2.2", "a b"], find_links: /wheels, index_url: agi.se,
    extra_index_url: "https://x/y?z=1&q", pre: true, extra_options: --no-build-isolation, force_build: true, env: {A: b}, gpu: t4}
- pip_install: numpy
- pip_install: [Django, numpy]
- pip_install: {packages: a, pre: true}
- pip_install: []
`)
	want := base.
		PipInstallWith([]string{"transformers==4.23.0", "torch~=2.2", "a b"}, full, snapbuild.ForceBuild()).
		PipInstallWith([]string{"numpy"}, snapbuild.PipOptions{}).
		PipInstallWith([]string{"Django", "numpy"}, snapbuild.PipOptions{}).
		PipInstallWith([]string{"a"}, snapbuild.PipOptions{Pre: true})
	instSame(t, img, want)
	if got := img.Commands()[1][1]; got != "RUN python -m pip install 'a b' 'torch~=2.2' transformers==4.23.0 --find-links /wheels --index-url agi.se --extra-index-url 'https://x/y?z=1&q' --pre --no-build-isolation" {
		t.Errorf("pip_install = %q", got)
	}
	if got := img.Commands()[4][1]; got != "RUN python -m pip install a  --pre" {
		t.Errorf("pre alone = %q", got)
	}

	// Relative paths are taken from the recipe's directory.
	img = instParse(t, dir, `
- debian_slim: "3.11"
- pip_install_from_requirements: requirements.txt
- pip_install_from_requirements: {requirements_txt: requirements.txt, find_links: /wh, pre: true}
- pip_install_from_pyproject: py/pyproject.toml
- pip_install_from_pyproject: {pyproject_toml: py/pyproject.toml, optional_dependencies: [test, nope], index_url: "https://i"}
`)
	req := filepath.Join(dir, "requirements.txt")
	pp := filepath.Join(dir, "py", "pyproject.toml")
	want = base.
		PipInstallFromRequirements(req, snapbuild.PipOptions{}).
		PipInstallFromRequirements(req, snapbuild.PipOptions{FindLinks: "/wh", Pre: true}).
		PipInstallFromPyproject(pp, nil, snapbuild.PipOptions{}).
		PipInstallFromPyproject(pp, []string{"test", "nope"}, snapbuild.PipOptions{IndexURL: "https://i"})
	instSame(t, img, want)
	if got := img.Commands()[2][2]; got != "RUN python -m pip install -r /.requirements.txt -f /wh --find-links /wh --pre" {
		t.Errorf("requirements = %q", got)
	}
	if got := img.Commands()[4][1]; got != "RUN python -m pip install numpy pytest 'requests>=2' --index-url https://i" {
		t.Errorf("pyproject = %q", got)
	}

	// Errors of the Image methods surface with the step's line.
	if err := instParseErr(t, dir, "- debian_slim: null\n- pip_install: [numpy, --pre]\n"); err != "line 2: pip_install: Package list for `Image.pip_install` cannot contain other arguments; try the `extra_options` parameter instead." {
		t.Errorf("error %q", err)
	}
	if err := instParseErr(t, dir, "- debian_slim: null\n- pip_install_from_pyproject: missing.toml\n"); err != "line 2: pip_install_from_pyproject: [Errno 2] No such file or directory: '"+filepath.Join(dir, "missing.toml")+"'" {
		t.Errorf("error %q", err)
	}
	if err := instParseErr(t, dir, "- debian_slim: null\n- pip_install: {packages: a, secret: x}\n"); !strings.HasPrefix(err, `line 2: pip_install: unknown argument "secret"`) {
		t.Errorf("error %q", err)
	}
	if err := instParseErr(t, dir, "- debian_slim: null\n- pip_install_from_requirements: {find_links: /x}\n"); err != "line 2: pip_install_from_requirements: requirements_txt is required" {
		t.Errorf("error %q", err)
	}
}

func TestInstallStepsPrivateRepos(t *testing.T) {
	dir := t.TempDir()
	base := snapbuild.DebianSlim("3.11")
	refs := []string{"github.com/ecorp/private-one@1.0.0", "gitlab.com/ecorp/two"}
	want := base.PipInstallPrivateRepos(refs, "erikbern", snapbuild.PipOptions{Pre: true},
		snapbuild.Secrets(snapbuild.SecretFromName("github-read-private"), snapbuild.SecretFromName("gl")))
	// Secrets by name, or in the long form, or mixed.
	for _, secrets := range []string{
		"[github-read-private, gl]",
		"[{from_name: github-read-private}, {from_name: gl}]",
		"[github-read-private, {from_name: gl}]",
	} {
		img := instParse(t, dir, `
- debian_slim: "3.11"
- pip_install_private_repos: {repositories: [github.com/ecorp/private-one@1.0.0, gitlab.com/ecorp/two], git_user: erikbern, pre: true, secrets: `+secrets+`}
`)
		instSame(t, img, want)
	}
	img := instParse(t, dir, `
- debian_slim: "3.11"
- pip_install_private_repos: {repositories: github.com/o/r, git_user: u, secrets: gh}
`)
	instSame(t, img, base.PipInstallPrivateRepos([]string{"github.com/o/r"}, "u", snapbuild.PipOptions{}, snapbuild.Secrets(snapbuild.SecretFromName("gh"))))
	if got := img.Commands()[1][1]; got != `RUN bash -c "[[ -v GITHUB_TOKEN ]] || (echo 'GITHUB_TOKEN env var not set by provided modal.Secret(s): modal.Secret.from_name('gh')' && exit 1)"` {
		t.Errorf("check line = %q", got)
	}

	if err := instParseErr(t, dir, "- debian_slim: null\n- pip_install_private_repos: {repositories: [github.com/a/b], git_user: u}\n"); err != "line 2: pip_install_private_repos: No secrets provided to function. Installing private packages requires tokens to be passed via modal.Secret objects." {
		t.Errorf("error %q", err)
	}
	if err := instParseErr(t, dir, "- debian_slim: null\n- pip_install_private_repos: {repositories: [bitbucket.org/a/b], git_user: u, secrets: [s]}\n"); err != "line 2: pip_install_private_repos: 1 out of 1 given repository refs are invalid. Invalid refs: ['bitbucket.org/a/b']. " {
		t.Errorf("error %q", err)
	}
}

func TestInstallStepsUv(t *testing.T) {
	dir := instRecipe(t, map[string]string{
		"test/requirements.txt":    "a\n",
		"a/b/c/requirements.txt":   "b\n",
		"proj/pyproject.toml":      "[project]\nname = \"p\"\ndependencies = []\n",
		"proj/uv.lock":             "version = 1\n",
		"pyproject.toml":           "[project]\nname = \"top\"\n",
		"ws/pyproject.toml":        "[tool.uv.workspace]\nmembers = []\n",
		"nolock/pyproject.toml":    "[project]\nname = \"n\"\n",
		"nolock/other/placeholder": "",
	})
	base := snapbuild.DebianSlim("3.11")
	img := instParse(t, dir, `
- debian_slim: "3.11"
- uv_pip_install: {packages: [transformers==4.23.0, "a b", "torch~=2.2"], requirements: [test/requirements.txt, a/b/c/requirements.txt],
    index_url: agi.se, pre: true, extra_options: --no-build-isolation}
- uv_pip_install: [torch==2.7.1, numpy]
- uv_pip_install: {packages: x, uv_version: 0.7.2, find_links: /w, extra_index_url: "https://e"}
- uv_pip_install: {requirements: [test/requirements.txt]}
- uv_pip_install: {}
`)
	want := base.
		UvPipInstall([]string{"transformers==4.23.0", "a b", "torch~=2.2"}, snapbuild.UvPipOptions{
			Requirements: []string{filepath.Join(dir, "test/requirements.txt"), filepath.Join(dir, "a/b/c/requirements.txt")},
			IndexURL:     "agi.se", Pre: true, ExtraOptions: "--no-build-isolation"}).
		UvPipInstall([]string{"torch==2.7.1", "numpy"}, snapbuild.UvPipOptions{}).
		UvPipInstall([]string{"x"}, snapbuild.UvPipOptions{UvVersion: "0.7.2", FindLinks: "/w", ExtraIndexURL: "https://e"}).
		UvPipInstall(nil, snapbuild.UvPipOptions{Requirements: []string{filepath.Join(dir, "test/requirements.txt")}})
	instSame(t, img, want)
	if got := img.Commands()[1]; !reflect.DeepEqual(got, []string{
		"FROM base",
		"COPY --from=ghcr.io/astral-sh/uv:latest /uv /.uv/uv",
		"COPY /.0_requirements.txt /.uv/0/requirements.txt",
		"COPY /.1_requirements.txt /.uv/1/requirements.txt",
		"RUN /.uv/uv pip install --python $(command -v python) --compile-bytecode --index-url agi.se --prerelease allow --no-build-isolation --requirements /.uv/0/requirements.txt --requirements /.uv/1/requirements.txt 'a b' 'torch~=2.2' transformers==4.23.0",
	}) {
		t.Errorf("uv_pip_install = %q", got)
	}

	img = instParse(t, dir, `
- debian_slim: "3.11"
- uv_sync: proj
- uv_sync: {uv_project_dir: proj, groups: [dev], extras: [gpu, cpu], frozen: false, extra_options: --no-dev, uv_version: 0.8.0}
- uv_sync: {}
- uv_sync: null
- uv_sync: nolock
`)
	proj := filepath.Join(dir, "proj")
	want = base.
		UvSync(proj, snapbuild.UvSyncOptions{}).
		UvSync(proj, snapbuild.UvSyncOptions{Groups: []string{"dev"}, Extras: []string{"gpu", "cpu"}, NoFrozen: true, ExtraOptions: "--no-dev", UvVersion: "0.8.0"}).
		UvSync(dir, snapbuild.UvSyncOptions{}).
		UvSync(dir, snapbuild.UvSyncOptions{}).
		UvSync(filepath.Join(dir, "nolock"), snapbuild.UvSyncOptions{})
	instSame(t, img, want)
	cmds := img.Commands()
	if got := cmds[1][4]; got != "RUN /.uv/uv sync --project=/.uv --no-install-workspace --compile-bytecode --frozen" {
		t.Errorf("uv_sync = %q", got)
	}
	if got := cmds[2][4]; got != "RUN /.uv/uv sync --project=/.uv --no-install-workspace --compile-bytecode --group=dev --extra=gpu --extra=cpu --no-dev" {
		t.Errorf("uv_sync frozen=false = %q", got)
	}
	// The recipe's directory has no uv.lock: no COPY of it, no --frozen.
	if got := cmds[3]; len(got) != 5 || got[3] != "RUN /.uv/uv sync --project=/.uv --no-install-workspace --compile-bytecode" {
		t.Errorf("uv_sync of the recipe dir = %q", got)
	}

	for src, want := range map[string]string{
		"- debian_slim: null\n- uv_sync: ws\n":                           "line 2: uv_sync: uv workspaces are not supported",
		"- debian_slim: null\n- uv_sync: missing\n":                      "line 2: uv_sync: Expected " + filepath.Join(dir, "missing") + "/pyproject.toml to exist",
		"- debian_slim: null\n- uv_sync: {groups: dev}\n":                "line 2: uv_sync: groups must be None or a list of strings",
		"- debian_slim: null\n- uv_pip_install: {requirements: r.txt}\n": "line 2: uv_pip_install: requirements must be None or a list of strings",
		"- debian_slim: null\n- uv_pip_install: [-e, .]\n":               "line 2: uv_pip_install: Package list for `Image.uv_pip_install` cannot contain other arguments; try the `extra_options` parameter instead.",
	} {
		if err := instParseErr(t, dir, src); err != want {
			t.Errorf("%s: error\n got  %q\n want %q", src, err, want)
		}
	}
}

func TestInstallStepsPoetry(t *testing.T) {
	dir := instRecipe(t, map[string]string{
		"pyproject.toml":        "[tool.poetry]\nname = \"p\"\n",
		"poetry.lock":           "# lock\n",
		"nolock/pyproject.toml": "",
		"locks/other.lock":      "",
	})
	base := snapbuild.DebianSlim("3.11")
	pp := filepath.Join(dir, "pyproject.toml")
	img := instParse(t, dir, `
- debian_slim: "3.11"
- poetry_install_from_file: pyproject.toml
- poetry_install_from_file: {poetry_pyproject_toml: pyproject.toml, ignore_lockfile: true, with_: [a, b], without: c, only: [d],
    poetry_version: "1.8.3", old_installer: true}
- poetry_install_from_file: {poetry_pyproject_toml: pyproject.toml, poetry_version: null}
- poetry_install_from_file: {poetry_pyproject_toml: nolock/pyproject.toml, poetry_lockfile: locks/other.lock, poetry_version: latest}
`)
	want := base.
		PoetryInstallFromFile(pp, snapbuild.PoetryOptions{}).
		PoetryInstallFromFile(pp, snapbuild.PoetryOptions{IgnoreLockfile: true, With: []string{"a", "b"}, Without: []string{"c"}, Only: []string{"d"}, PoetryVersion: "1.8.3", OldInstaller: true}).
		PoetryInstallFromFile(pp, snapbuild.PoetryOptions{NoPoetryInstall: true}).
		PoetryInstallFromFile(filepath.Join(dir, "nolock/pyproject.toml"), snapbuild.PoetryOptions{PoetryLockfile: filepath.Join(dir, "locks/other.lock")})
	instSame(t, img, want)
	cmds := img.Commands()
	if got := cmds[1]; !reflect.DeepEqual(got, []string{
		"FROM base",
		"RUN python -m pip install poetry",
		"COPY /.poetry.lock /tmp/poetry/poetry.lock",
		"COPY /.pyproject.toml /tmp/poetry/pyproject.toml",
		"RUN cd /tmp/poetry && \\ ",
		"  poetry config virtualenvs.create false && \\ ",
		"poetry install --no-root --compile",
	}) {
		t.Errorf("poetry = %q", got)
	}
	if got := cmds[2][len(cmds[2])-1]; got != "poetry install --no-root --with a,b --without c --only d --compile" {
		t.Errorf("poetry groups = %q", got)
	}
	if got := cmds[3][1]; got != "COPY /.poetry.lock /tmp/poetry/poetry.lock" {
		t.Errorf("poetry_version null: second command %q, want no pip install", got)
	}

	if err := instParseErr(t, dir, "- debian_slim: null\n- poetry_install_from_file: nolock/pyproject.toml\n"); err != "line 2: poetry_install_from_file: poetry.lock not found at inferred location: "+filepath.Join(dir, "nolock", "poetry.lock")+". If a lockfile is not needed, `ignore_lockfile=True` can be used." {
		t.Errorf("error %q", err)
	}
	if err := instParseErr(t, dir, "- debian_slim: null\n- poetry_install_from_file: {poetry_pyproject_toml: pyproject.toml, poetry_version: 1.8}\n"); !strings.Contains(err, "should be a string, not a float") {
		t.Errorf("error %q", err)
	}
	if err := instParseErr(t, dir, "- debian_slim: null\n- poetry_install_from_file: {poetry_pyproject_toml: pyproject.toml, with: [a]}\n"); !strings.HasPrefix(err, `line 2: poetry_install_from_file: unknown argument "with"`) {
		t.Errorf("error %q", err)
	}
}

func TestInstallStepsMicromamba(t *testing.T) {
	dir := instRecipe(t, map[string]string{"env/env.yml": "dependencies: [numpy]\n"})
	img := instParse(t, dir, `
- micromamba: "3.12"
- micromamba_install: {packages: ["torch=2.2", "transformers<4.23.0"], spec_file: env/env.yml, channels: [conda-forge, my-channel]}
- micromamba_install: {spec_file: env/env.yml}
- micromamba_install: numpy
- micromamba_install: {channels: [conda-forge]}
- apt_install: [git]
`)
	spec := filepath.Join(dir, "env", "env.yml")
	want := snapbuild.Micromamba("3.12").
		MicromambaInstall([]string{"torch=2.2", "transformers<4.23.0"}, snapbuild.MicromambaOptions{SpecFile: spec, Channels: []string{"conda-forge", "my-channel"}}).
		MicromambaInstall(nil, snapbuild.MicromambaOptions{SpecFile: spec}).
		MicromambaInstall([]string{"numpy"}, snapbuild.MicromambaOptions{}).
		AptInstall([]string{"git"})
	instSame(t, img, want)
	cmds := img.Commands()
	if !reflect.DeepEqual(cmds[0], []string{
		"FROM mambaorg/micromamba:2.1.1-debian12-slim",
		`SHELL ["/usr/local/bin/_dockerfile_shell.sh"]`,
		"ENV MAMBA_DOCKERFILE_ACTIVATE=1",
		"RUN micromamba install -n base -y python=3.12 pip -c conda-forge",
		`CMD ["sleep", "172800"]`,
	}) {
		t.Errorf("micromamba = %q", cmds[0])
	}
	for i, want := range []string{
		"RUN micromamba install torch=2.2 'transformers<4.23.0' -f /env.yml -n base -c conda-forge -c my-channel --yes",
		"RUN micromamba install -f /env.yml -n base --yes",
		"RUN micromamba install numpy --yes",
	} {
		if got := cmds[i+1][len(cmds[i+1])-1]; got != want {
			t.Errorf("micromamba_install %d = %q, want %q", i, got, want)
		}
	}
	instSame(t, instParse(t, dir, "- micromamba: {python_version: \"3.11\", force_build: true}\n"), snapbuild.Micromamba("3.11"))
	instSame(t, instParse(t, dir, "- micromamba: null\n"), snapbuild.Micromamba(""))

	for src, want := range map[string]string{
		"- micromamba: \"3.12t\"\n":                     "line 1: micromamba: Free threaded Python is not supported with Image.micromamba",
		"- micromamba: 3.12\n":                          "line 1: micromamba: the `python_version` argument should be a string, not a float: quote it (\"3.12\")",
		"- debian_slim: null\n- micromamba: \"3.11\"\n": "line 2: micromamba makes a new base and can only be the first step",
	} {
		if err := instParseErr(t, dir, src); err != want {
			t.Errorf("%s: error\n got  %q\n want %q", src, err, want)
		}
	}
}

// A from_dotenv path starting with "~/" is left to the Secret, which expands
// it as every local path; other relative paths are relative to the recipe.
// Before, "~/x.env" became "<recipe dir>/~/x.env".
func TestSecretFromDotenvPath(t *testing.T) {
	dir := t.TempDir()
	for path, want := range map[string]string{
		"~/x.env":      "~/x.env",
		"x.env":        dir + "/x.env",
		"~other/x.env": dir + "/~other/x.env",
		"/abs/x.env":   "/abs/x.env",
	} {
		img := instParse(t, dir, `
- debian_slim: "3.11"
- pip_install_private_repos: {repositories: github.com/o/r, git_user: u, secrets: [{from_dotenv: "`+path+`"}]}
`)
		if got, sub := img.Commands()[1][1], "modal.Secret.from_dotenv('"+want+"')"; !strings.Contains(got, sub) {
			t.Errorf("from_dotenv %q: check line %q, want it to name %s", path, got, sub)
		}
	}
}
