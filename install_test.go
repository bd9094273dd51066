package snapbuild

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/snapbuild/snapbuild/internal/modal"
)

// Golden tests of the installer methods: every command text is Modal's
// 2025.06 output, as each method's godoc quotes it.

func instBase(t *testing.T) Image {
	t.Helper()
	img := DebianSlim("3.11")
	if err := img.Err(); err != nil {
		t.Fatal(err)
	}
	return img
}

// instLast returns the last layer of img, failing on an image error.
func instLast(t *testing.T, img Image) *modal.Layer {
	t.Helper()
	if err := img.Err(); err != nil {
		t.Fatalf("unexpected image error: %v", err)
	}
	if len(img.layers) == 0 {
		t.Fatal("image has no layers")
	}
	return img.layers[len(img.layers)-1]
}

// instWant checks the last layer's commands.
func instWant(t *testing.T, img Image, want ...string) *modal.Layer {
	t.Helper()
	l := instLast(t, img)
	if !reflect.DeepEqual(l.Commands, want) {
		t.Errorf("commands:\n got  %q\n want %q", l.Commands, want)
	}
	return l
}

func instWantContext(t *testing.T, l *modal.Layer, want ...modal.ContextInput) {
	t.Helper()
	if len(want) == 0 {
		want = nil
	}
	if !reflect.DeepEqual(l.Context, want) {
		t.Errorf("context:\n got  %+v\n want %+v", l.Context, want)
	}
}

func instWantErr(t *testing.T, img Image, method, message string) {
	t.Helper()
	err := img.Err()
	var ie *InvalidError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v (%T) is not an *InvalidError (commands %q)", err, err, img.Commands())
	}
	if ie.Method != method || ie.Message != message {
		t.Errorf("error:\n got  %s: %s\n want %s: %s", ie.Method, ie.Message, method, message)
	}
}

// instSame checks that got is base itself (Modal returns self).
func instSame(t *testing.T, got, base Image) {
	t.Helper()
	if got.err != nil || len(got.layers) != len(base.layers) || !reflect.DeepEqual(got.Commands(), base.Commands()) {
		t.Errorf("want the same image, got %q (err %v)", got.Commands(), got.err)
	}
}

func instWrite(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// instParse parses l's commands and checks the instruction types.
func instParse(t *testing.T, l *modal.Layer, types ...any) []instruction {
	t.Helper()
	ins, err := modal.ParseCommands(l.Commands)
	if err != nil {
		t.Fatalf("modal.ParseCommands(%q): %v", l.Commands, err)
	}
	if len(ins) != len(types) {
		t.Fatalf("modal.ParseCommands(%q) gave %d instructions, want %d", l.Commands, len(ins), len(types))
	}
	for i := range ins {
		if reflect.TypeOf(ins[i].Cmd) != reflect.TypeOf(types[i]) {
			t.Errorf("instruction %d (%q) is %T, want %T", i, ins[i].Text, ins[i].Cmd, types[i])
		}
	}
	if len(ins) > 0 && l.Root == nil && (!ins[0].IsFrom() || ins[0].FromRef() != "base") {
		t.Errorf("first instruction %q is not FROM base", ins[0].Text)
	}
	return ins
}

var (
	tFrom  = &instructions.Stage{}
	tRun   = &instructions.RunCommand{}
	tCopy  = &instructions.CopyCommand{}
	tEnv   = &instructions.EnvCommand{}
	tShell = &instructions.ShellCommand{}
	tCmd   = &instructions.CmdCommand{}
)

func instRunLine(t *testing.T, in instruction) string {
	t.Helper()
	r, ok := in.Cmd.(*instructions.RunCommand)
	if !ok || !r.PrependShell || len(r.CmdLine) != 1 || len(r.FlagsUsed) != 0 {
		t.Fatalf("%q: want a shell-form RUN without flags, got %+v", in.Text, in.Cmd)
	}
	return r.CmdLine[0]
}

func TestInstallPipInstallWith(t *testing.T) {
	base := instBase(t)
	// §12's example.
	l := instWant(t, base.PipInstallWith([]string{"transformers==4.23.0", "torch~=2.2", "a b"}, PipOptions{
		FindLinks: "/wheels", IndexURL: "agi.se", ExtraIndexURL: "https://x/y?z=1&q", Pre: true, ExtraOptions: "--no-build-isolation",
	}),
		"FROM base",
		"RUN python -m pip install 'a b' 'torch~=2.2' transformers==4.23.0 --find-links /wheels --index-url agi.se --extra-index-url 'https://x/y?z=1&q' --pre --no-build-isolation")
	ins := instParse(t, l, tFrom, tRun)
	if got := instRunLine(t, ins[1]); !strings.HasPrefix(got, "python -m pip install 'a b'") {
		t.Errorf("RUN = %q", got)
	}

	for _, c := range []struct {
		pkgs []string
		o    PipOptions
		want string
	}{
		{[]string{"a"}, PipOptions{Pre: true}, "RUN python -m pip install a  --pre"}, // Modal's double space
		{[]string{"a"}, PipOptions{Pre: true, ExtraOptions: "--no-clean"}, "RUN python -m pip install a  --pre --no-clean"},
		{[]string{"a"}, PipOptions{ExtraOptions: "--no-build-isolation --no-clean"}, "RUN python -m pip install a --no-build-isolation --no-clean"},
		{[]string{"a"}, PipOptions{IndexURL: "https://pypi.org/simple", Pre: true}, "RUN python -m pip install a --index-url https://pypi.org/simple --pre"},
		{[]string{"a"}, PipOptions{ExtraIndexURL: "x y", FindLinks: "/w"}, "RUN python -m pip install a --find-links /w --extra-index-url 'x y'"},
		{[]string{"numpy", "aiohttp[speedups]>=3", "Zlib", "Django"}, PipOptions{}, "RUN python -m pip install Django Zlib 'aiohttp[speedups]>=3' numpy"},
		{[]string{"httpx~=0.23.3", "click"}, PipOptions{}, "RUN python -m pip install click 'httpx~=0.23.3'"},
		{[]string{"flash-attn==2.5.8"}, PipOptions{ExtraOptions: "--no-build-isolation"}, "RUN python -m pip install flash-attn==2.5.8 --no-build-isolation"},
	} {
		instWant(t, base.PipInstallWith(c.pkgs, c.o), "FROM base", c.want)
	}

	// Zero options: exactly PipInstall.
	pkgs := []string{"numpy", "Django", "requests>=2"}
	if got, want := base.PipInstallWith(pkgs, PipOptions{}).Commands(), base.PipInstall(pkgs).Commands(); !reflect.DeepEqual(got, want) {
		t.Errorf("PipInstallWith with no options = %q, PipInstall = %q", got, want)
	}
	// The caller's slice is not reordered.
	if pkgs[0] != "numpy" {
		t.Errorf("packages were sorted in place: %q", pkgs)
	}

	instSame(t, base.PipInstallWith(nil, PipOptions{Pre: true}), base)
	instWantErr(t, base.PipInstallWith([]string{"numpy", "--upgrade"}, PipOptions{}), "pip_install",
		"Package list for `Image.pip_install` cannot contain other arguments; try the `extra_options` parameter instead.")
	instWantErr(t, base.PipInstallWith([]string{"a"}, PipOptions{ExtraOptions: "--x\nRUN evil"}), "pip_install",
		`extra_options "--x\nRUN evil" holds a line break: the value is written into one Dockerfile instruction, which ends at a line break, and the Dockerfile syntax cannot quote one there. Remove the line break`)

	// Step options apply.
	l = instLast(t, base.PipInstallWith([]string{"a"}, PipOptions{}, ForceBuild(), BuildEnv(map[string]string{"K": "v"}), GPU("a100:2")))
	if !l.ForceBuild || l.BuildEnv["K"] != "v" || l.GPU != "A100:2" {
		t.Errorf("step options not applied: %+v", l)
	}
}

func TestInstallNotConstructed(t *testing.T) {
	dir := t.TempDir()
	for _, img := range []Image{
		Image{}.PipInstallWith([]string{"a"}, PipOptions{}),
		Image{}.PipInstallWith(nil, PipOptions{}),
		Image{}.PipInstallFromRequirements(filepath.Join(dir, "r.txt"), PipOptions{}),
		Image{}.PipInstallFromPyproject(filepath.Join(dir, "missing.toml"), nil, PipOptions{}),
		Image{}.PipInstallPrivateRepos(nil, "", PipOptions{}),
		Image{}.UvPipInstall(nil, UvPipOptions{}),
		Image{}.UvSync(dir, UvSyncOptions{}),
		Image{}.PoetryInstallFromFile(filepath.Join(dir, "pyproject.toml"), PoetryOptions{}),
		Image{}.MicromambaInstall([]string{"x"}, MicromambaOptions{}),
	} {
		err := img.Err()
		if err == nil || !strings.Contains(err.Error(), "Image has not been constructed yet") {
			t.Errorf("want the not-constructed error, got %v", err)
		}
	}
	// An error already in the image is kept.
	bad := DebianSlim("2.7")
	if got := bad.UvPipInstall([]string{"x"}, UvPipOptions{}); got.Err() != bad.Err() {
		t.Errorf("error replaced: %v", got.Err())
	}
}

func TestInstallPipInstallFromRequirements(t *testing.T) {
	base := instBase(t)
	dir := t.TempDir()
	req := instWrite(t, filepath.Join(dir, "requirements.txt"), "numpy\n")

	l := instWant(t, base.PipInstallFromRequirements(req, PipOptions{}),
		"FROM base",
		"COPY /.requirements.txt /.requirements.txt",
		"RUN python -m pip install -r /.requirements.txt")
	instWantContext(t, l, modal.ContextInput{Local: req, Remote: "/.requirements.txt"})
	ins := instParse(t, l, tFrom, tCopy, tRun)
	c := ins[1].Cmd.(*instructions.CopyCommand)
	if c.From != "" || !reflect.DeepEqual(c.SourcePaths, []string{"/.requirements.txt"}) || c.DestPath != "/.requirements.txt" {
		t.Errorf("COPY = %+v", c)
	}

	// find_links twice: unquoted after -f, quoted after --find-links.
	instWant(t, base.PipInstallFromRequirements(req, PipOptions{FindLinks: "/wh"}),
		"FROM base", "COPY /.requirements.txt /.requirements.txt",
		"RUN python -m pip install -r /.requirements.txt -f /wh --find-links /wh")
	instWant(t, base.PipInstallFromRequirements(req, PipOptions{FindLinks: "/w h", IndexURL: "agi.se", Pre: true, ExtraOptions: "--no-deps"}),
		"FROM base", "COPY /.requirements.txt /.requirements.txt",
		"RUN python -m pip install -r /.requirements.txt -f /w h --find-links '/w h' --index-url agi.se --pre --no-deps")
	instWant(t, base.PipInstallFromRequirements(req, PipOptions{Pre: true}),
		"FROM base", "COPY /.requirements.txt /.requirements.txt",
		"RUN python -m pip install -r /.requirements.txt  --pre")

	// "~" is expanded; relative paths are made absolute when called.
	t.Setenv("HOME", dir)
	l = instLast(t, base.PipInstallFromRequirements("~/requirements.txt", PipOptions{}))
	instWantContext(t, l, modal.ContextInput{Local: req, Remote: "/.requirements.txt"})
	t.Chdir(dir)
	l = instLast(t, base.PipInstallFromRequirements("requirements.txt", PipOptions{}))
	instWantContext(t, l, modal.ContextInput{Local: req, Remote: "/.requirements.txt"})

	// A missing file is found when the image is built (as Modal), not now.
	if err := base.PipInstallFromRequirements(filepath.Join(dir, "nope.txt"), PipOptions{}).Err(); err != nil {
		t.Errorf("missing file: error at call time: %v", err)
	}
	instWantErr(t, base.PipInstallFromRequirements("", PipOptions{}), "pip_install_from_requirements", "requirements_txt: empty path")
}

const instPyproject = `[project]
name = "demo"
version = "0.1.0"
dependencies = ["requests>=2", "numpy"]

[project.optional-dependencies]
test = ["pytest"]
docs = ["Sphinx", "furo"]
`

func TestInstallPipInstallFromPyproject(t *testing.T) {
	base := instBase(t)
	dir := t.TempDir()
	pp := instWrite(t, filepath.Join(dir, "pyproject.toml"), instPyproject)

	l := instWant(t, base.PipInstallFromPyproject(pp, []string{"test", "unknown"}, PipOptions{}),
		"FROM base", "RUN python -m pip install numpy pytest 'requests>=2'")
	instWantContext(t, l)
	instParse(t, l, tFrom, tRun)
	instWant(t, base.PipInstallFromPyproject(pp, nil, PipOptions{}),
		"FROM base", "RUN python -m pip install numpy 'requests>=2'")
	instWant(t, base.PipInstallFromPyproject(pp, []string{"docs", "test"}, PipOptions{IndexURL: "https://i/simple", Pre: true}),
		"FROM base", "RUN python -m pip install Sphinx furo numpy pytest 'requests>=2' --index-url https://i/simple --pre")

	t.Setenv("HOME", dir)
	instWant(t, base.PipInstallFromPyproject("~/pyproject.toml", nil, PipOptions{}),
		"FROM base", "RUN python -m pip install numpy 'requests>=2'")

	poetryStyle := instWrite(t, filepath.Join(dir, "poetry", "pyproject.toml"), "[tool.poetry.dependencies]\npython = \"^3.11\"\n")
	instWantErr(t, base.PipInstallFromPyproject(poetryStyle, nil, PipOptions{}), "pip_install_from_pyproject",
		"No [project.dependencies] section in pyproject.toml file. If your pyproject.toml instead declares [tool.poetry.dependencies], use `Image.poetry_install_from_file()`. See https://packaging.python.org/en/latest/guides/writing-pyproject-toml for further file format guidelines.")
	missing := filepath.Join(dir, "nope", "pyproject.toml")
	instWantErr(t, base.PipInstallFromPyproject(missing, nil, PipOptions{}), "pip_install_from_pyproject",
		"[Errno 2] No such file or directory: '"+missing+"'")
	noOpt := instWrite(t, filepath.Join(dir, "noopt", "pyproject.toml"), "[project]\ndependencies = [\"a\"]\n")
	instWant(t, base.PipInstallFromPyproject(noOpt, nil, PipOptions{}), "FROM base", "RUN python -m pip install a")
	instWantErr(t, base.PipInstallFromPyproject(noOpt, []string{"test"}, PipOptions{}), "pip_install_from_pyproject",
		"no [project.optional-dependencies] table in "+noOpt+", but optional_dependencies ['test'] were requested (Modal fails with KeyError: 'optional-dependencies')")
	badTOML := instWrite(t, filepath.Join(dir, "bad", "pyproject.toml"), "[project\n")
	if err := base.PipInstallFromPyproject(badTOML, nil, PipOptions{}).Err(); err == nil || !strings.Contains(err.Error(), "is not valid TOML") {
		t.Errorf("bad TOML: %v", err)
	}
	notList := instWrite(t, filepath.Join(dir, "notlist", "pyproject.toml"), "[project]\ndependencies = \"a\"\n")
	instWantErr(t, base.PipInstallFromPyproject(notList, nil, PipOptions{}), "pip_install_from_pyproject",
		"[project].dependencies in "+notList+" must be a list of strings")
	// An empty list: Modal's command as is (pip refuses it at build time).
	empty := instWrite(t, filepath.Join(dir, "empty", "pyproject.toml"), "[project]\ndependencies = []\n")
	instWant(t, base.PipInstallFromPyproject(empty, nil, PipOptions{}), "FROM base", "RUN python -m pip install")
}

func TestInstallPipInstallPrivateRepos(t *testing.T) {
	base := instBase(t)
	refs := []string{"github.com/ecorp/private-one@1.0.0", "gitlab.com/ecorp/private-two@main", "github.com/ecorp/private-four#subdirectory=inner"}
	secrets := Secrets(SecretFromName("github-read-private"), SecretFromName("gl"))
	l := instWant(t, base.PipInstallPrivateRepos(refs, "erikbern", PipOptions{}, secrets),
		"FROM base",
		`RUN bash -c "[[ -v GITHUB_TOKEN ]] || (echo 'GITHUB_TOKEN env var not set by provided modal.Secret(s): modal.Secret.from_name('github-read-private'),modal.Secret.from_name('gl')' && exit 1)"`,
		`RUN bash -c "[[ -v GITLAB_TOKEN ]] || (echo 'GITLAB_TOKEN env var not set by provided modal.Secret(s): modal.Secret.from_name('github-read-private'),modal.Secret.from_name('gl')' && exit 1)"`,
		"RUN apt-get update && apt-get install -y git",
		`RUN python3 -m pip install "git+https://erikbern:$GITHUB_TOKEN@github.com/ecorp/private-one@1.0.0"`,
		`RUN python3 -m pip install "git+https://erikbern:$GITLAB_TOKEN@gitlab.com/ecorp/private-two@main"`,
		`RUN python3 -m pip install "git+https://erikbern:$GITHUB_TOKEN@github.com/ecorp/private-four#subdirectory=inner"`,
	)
	instParse(t, l, tFrom, tRun, tRun, tRun, tRun, tRun, tRun)
	if len(l.Secrets) != 2 || l.Secrets[0].Repr() != "modal.Secret.from_name('github-read-private')" {
		t.Errorf("secrets not kept on the layer: %+v", l.Secrets)
	}

	// GitHub only, pip flags, and env= named after the secrets, as the
	// from_dict Secret Modal makes of it.
	l = instWant(t, base.PipInstallPrivateRepos([]string{"github.com/o/r"}, "u", PipOptions{Pre: true, ExtraOptions: "--no-deps"},
		Secrets(SecretFromName("s")), BuildEnv(map[string]string{"GITHUB_TOKEN": "t", "A": "b"})),
		"FROM base",
		`RUN bash -c "[[ -v GITHUB_TOKEN ]] || (echo 'GITHUB_TOKEN env var not set by provided modal.Secret(s): modal.Secret.from_name('s'),`+
			SecretFromDict(map[string]string{"A": "", "GITHUB_TOKEN": ""}).Repr()+`' && exit 1)"`,
		"RUN apt-get update && apt-get install -y git",
		`RUN python3 -m pip install "git+https://u:$GITHUB_TOKEN@github.com/o/r"  --pre --no-deps`,
	)
	if l.BuildEnv["GITHUB_TOKEN"] != "t" {
		t.Errorf("BuildEnv not applied: %+v", l.BuildEnv)
	}
	instWant(t, base.PipInstallPrivateRepos([]string{"gitlab.com/o/r"}, "u", PipOptions{IndexURL: "https://i"}, Secrets(SecretFromName("s"))),
		"FROM base",
		`RUN bash -c "[[ -v GITLAB_TOKEN ]] || (echo 'GITLAB_TOKEN env var not set by provided modal.Secret(s): modal.Secret.from_name('s')' && exit 1)"`,
		"RUN apt-get update && apt-get install -y git",
		`RUN python3 -m pip install "git+https://u:$GITLAB_TOKEN@gitlab.com/o/r" --index-url https://i`,
	)

	const m = "pip_install_private_repos"
	noSecrets := "No secrets provided to function. Installing private packages requires tokens to be passed via modal.Secret objects."
	instWantErr(t, base.PipInstallPrivateRepos(refs, "u", PipOptions{}), m, noSecrets)
	instWantErr(t, base.PipInstallPrivateRepos(refs, "u", PipOptions{}, BuildEnv(map[string]string{"GITHUB_TOKEN": "t"})), m, noSecrets)
	instWantErr(t, base.PipInstallPrivateRepos([]string{"github.com/a/b", "bitbucket.org/a/b", "github.comx/y", "https://github.com/a/b"}, "u", PipOptions{}, Secrets(SecretFromName("s"))), m,
		"3 out of 4 given repository refs are invalid. Invalid refs: ['bitbucket.org/a/b', 'github.comx/y', 'https://github.com/a/b']. ")
	instWantErr(t, base.PipInstallPrivateRepos(refs, "", PipOptions{}, Secrets(SecretFromName("s"))), m,
		"pip_install_private_repos() missing 1 required keyword-only argument: 'git_user'")
}

func TestInstallUvPipInstall(t *testing.T) {
	base := instBase(t)
	dir := t.TempDir()
	r0 := instWrite(t, filepath.Join(dir, "test", "requirements.txt"), "a\n")
	r1 := instWrite(t, filepath.Join(dir, "a", "b", "c", "requirements.txt"), "b\n")

	// §16's example.
	l := instWant(t, base.UvPipInstall([]string{"transformers==4.23.0", "a b", "torch~=2.2"}, UvPipOptions{
		Requirements: []string{r0, r1}, IndexURL: "agi.se", Pre: true, ExtraOptions: "--no-build-isolation",
	}),
		"FROM base",
		"COPY --from=ghcr.io/astral-sh/uv:latest /uv /.uv/uv",
		"COPY /.0_requirements.txt /.uv/0/requirements.txt",
		"COPY /.1_requirements.txt /.uv/1/requirements.txt",
		"RUN /.uv/uv pip install --python $(command -v python) --compile-bytecode --index-url agi.se --prerelease allow --no-build-isolation --requirements /.uv/0/requirements.txt --requirements /.uv/1/requirements.txt 'a b' 'torch~=2.2' transformers==4.23.0")
	instWantContext(t, l, modal.ContextInput{Local: r0, Remote: "/.0_requirements.txt"}, modal.ContextInput{Local: r1, Remote: "/.1_requirements.txt"})
	ins := instParse(t, l, tFrom, tCopy, tCopy, tCopy, tRun)
	c := ins[1].Cmd.(*instructions.CopyCommand)
	if c.From != "ghcr.io/astral-sh/uv:latest" || !reflect.DeepEqual(c.SourcePaths, []string{"/uv"}) || c.DestPath != "/.uv/uv" {
		t.Errorf("COPY --from = from %q sources %q dest %q", c.From, c.SourcePaths, c.DestPath)
	}
	if c := ins[2].Cmd.(*instructions.CopyCommand); c.From != "" || c.DestPath != "/.uv/0/requirements.txt" {
		t.Errorf("COPY = %+v", c)
	}

	instWant(t, base.UvPipInstall([]string{"torch==2.7.1", "numpy"}, UvPipOptions{}),
		"FROM base",
		"COPY --from=ghcr.io/astral-sh/uv:latest /uv /.uv/uv",
		"RUN /.uv/uv pip install --python $(command -v python) --compile-bytecode numpy torch==2.7.1")
	instWant(t, base.UvPipInstall([]string{"x"}, UvPipOptions{UvVersion: "0.7.2", FindLinks: "/w h", ExtraIndexURL: "https://e/simple"}),
		"FROM base",
		"COPY --from=ghcr.io/astral-sh/uv:0.7.2 /uv /.uv/uv",
		"RUN /.uv/uv pip install --python $(command -v python) --compile-bytecode --find-links '/w h' --extra-index-url https://e/simple x")
	// Requirements only; "~" expanded; the basename of the path as given.
	t.Setenv("HOME", dir)
	l = instWant(t, base.UvPipInstall(nil, UvPipOptions{Requirements: []string{"~/test/requirements.txt"}}),
		"FROM base",
		"COPY --from=ghcr.io/astral-sh/uv:latest /uv /.uv/uv",
		"COPY /.0_requirements.txt /.uv/0/requirements.txt",
		"RUN /.uv/uv pip install --python $(command -v python) --compile-bytecode --requirements /.uv/0/requirements.txt")
	instWantContext(t, l, modal.ContextInput{Local: r0, Remote: "/.0_requirements.txt"})

	instSame(t, base.UvPipInstall(nil, UvPipOptions{Pre: true, UvVersion: "1"}), base)
	instWantErr(t, base.UvPipInstall([]string{"-r", "x"}, UvPipOptions{}), "uv_pip_install",
		"Package list for `Image.uv_pip_install` cannot contain other arguments; try the `extra_options` parameter instead.")
}

func TestInstallUvSync(t *testing.T) {
	base := instBase(t)
	dir := t.TempDir()
	pp := instWrite(t, filepath.Join(dir, "pyproject.toml"), "[project]\nname = \"p\"\ndependencies = [\"numpy\"]\n")

	// No lock: no uv.lock COPY and no --frozen.
	l := instWant(t, base.UvSync(dir, UvSyncOptions{}),
		"FROM base",
		"COPY --from=ghcr.io/astral-sh/uv:latest /uv /.uv/uv",
		"COPY /.pyproject.toml /.uv/pyproject.toml",
		"RUN /.uv/uv sync --project=/.uv --no-install-workspace --compile-bytecode",
		"ENV PATH=/.uv/.venv/bin:$PATH")
	instWantContext(t, l, modal.ContextInput{Local: pp, Remote: "/.pyproject.toml"})
	ins := instParse(t, l, tFrom, tCopy, tCopy, tRun, tEnv)
	if e := ins[4].Cmd.(*instructions.EnvCommand); len(e.Env) != 1 || e.Env[0].Key != "PATH" || e.Env[0].Value != "/.uv/.venv/bin:$PATH" {
		t.Errorf("ENV = %+v", e.Env)
	}

	lock := instWrite(t, filepath.Join(dir, "uv.lock"), "version = 1\n")
	l = instWant(t, base.UvSync(dir, UvSyncOptions{Groups: []string{"dev", "lint"}, Extras: []string{"gpu"}, ExtraOptions: "--no-dev", UvVersion: "0.8.0"}),
		"FROM base",
		"COPY --from=ghcr.io/astral-sh/uv:0.8.0 /uv /.uv/uv",
		"COPY /.pyproject.toml /.uv/pyproject.toml",
		"COPY /.uv.lock /.uv/uv.lock",
		"RUN /.uv/uv sync --project=/.uv --no-install-workspace --compile-bytecode --group=dev --group=lint --extra=gpu --no-dev --frozen",
		"ENV PATH=/.uv/.venv/bin:$PATH")
	instWantContext(t, l, modal.ContextInput{Local: pp, Remote: "/.pyproject.toml"}, modal.ContextInput{Local: lock, Remote: "/.uv.lock"})
	instParse(t, l, tFrom, tCopy, tCopy, tCopy, tRun, tEnv)
	instWant(t, base.UvSync(dir, UvSyncOptions{NoFrozen: true}),
		"FROM base",
		"COPY --from=ghcr.io/astral-sh/uv:latest /uv /.uv/uv",
		"COPY /.pyproject.toml /.uv/pyproject.toml",
		"COPY /.uv.lock /.uv/uv.lock",
		"RUN /.uv/uv sync --project=/.uv --no-install-workspace --compile-bytecode",
		"ENV PATH=/.uv/.venv/bin:$PATH")

	// The default directory is "./" (the working directory); "~" expanded.
	t.Chdir(dir)
	l = instLast(t, base.UvSync("", UvSyncOptions{}))
	instWantContext(t, l, modal.ContextInput{Local: pp, Remote: "/.pyproject.toml"}, modal.ContextInput{Local: lock, Remote: "/.uv.lock"})
	t.Setenv("HOME", dir)
	l = instLast(t, base.UvSync("~", UvSyncOptions{}))
	instWantContext(t, l, modal.ContextInput{Local: pp, Remote: "/.pyproject.toml"}, modal.ContextInput{Local: lock, Remote: "/.uv.lock"})

	empty := t.TempDir()
	instWantErr(t, base.UvSync(empty, UvSyncOptions{}), "uv_sync", "Expected "+empty+"/pyproject.toml to exist")
	instWantErr(t, base.UvSync(empty+"/", UvSyncOptions{}), "uv_sync", "Expected "+empty+"/pyproject.toml to exist")
	t.Chdir(empty)
	instWantErr(t, base.UvSync("", UvSyncOptions{}), "uv_sync", "Expected ./pyproject.toml to exist")
	ws := filepath.Join(dir, "ws")
	instWrite(t, filepath.Join(ws, "pyproject.toml"), "[project]\nname = \"w\"\n\n[tool.uv.workspace]\nmembers = [\"pkgs/*\"]\n")
	instWantErr(t, base.UvSync(ws, UvSyncOptions{}), "uv_sync", "uv workspaces are not supported")
	// Builder 2025.06: modal need not be a dependency, project.dependencies
	// need not exist.
	nodeps := filepath.Join(dir, "nodeps")
	instWrite(t, filepath.Join(nodeps, "pyproject.toml"), "[tool.uv]\ndev-dependencies = []\n")
	if err := base.UvSync(nodeps, UvSyncOptions{}).Err(); err != nil {
		t.Errorf("pyproject without dependencies: %v", err)
	}
}

func TestInstallPoetryInstallFromFile(t *testing.T) {
	base := instBase(t)
	dir := t.TempDir()
	pp := instWrite(t, filepath.Join(dir, "pyproject.toml"), "[tool.poetry]\nname = \"p\"\n")
	lock := instWrite(t, filepath.Join(dir, "poetry.lock"), "# lock\n")

	l := instWant(t, base.PoetryInstallFromFile(pp, PoetryOptions{}),
		"FROM base",
		"RUN python -m pip install poetry",
		"COPY /.poetry.lock /tmp/poetry/poetry.lock",
		"COPY /.pyproject.toml /tmp/poetry/pyproject.toml",
		"RUN cd /tmp/poetry && \\ ",
		"  poetry config virtualenvs.create false && \\ ",
		"poetry install --no-root --compile")
	instWantContext(t, l, modal.ContextInput{Local: pp, Remote: "/.pyproject.toml"}, modal.ContextInput{Local: lock, Remote: "/.poetry.lock"})
	// The three last lines are one continued RUN.
	ins, err := modal.ParseCommands(l.Commands)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, in := range ins {
		kinds = append(kinds, reflect.TypeOf(in.Cmd).Elem().Name())
	}
	if want := []string{"Stage", "RunCommand", "CopyCommand", "CopyCommand", "RunCommand"}; !reflect.DeepEqual(kinds, want) {
		t.Fatalf("instructions %q, want %q", kinds, want)
	}
	if got := instRunLine(t, ins[4]); got != "cd /tmp/poetry &&   poetry config virtualenvs.create false && poetry install --no-root --compile" {
		t.Errorf("continued RUN = %q", got)
	}

	// Without a lock file, pinned poetry, old installer, groups.
	l = instWant(t, base.PoetryInstallFromFile(pp, PoetryOptions{IgnoreLockfile: true, PoetryVersion: "1.8.3", OldInstaller: true,
		With: []string{"a", "b"}, Without: []string{"c"}, Only: []string{"d", "e"}}),
		"FROM base",
		"RUN python -m pip install poetry==1.8.3",
		"RUN poetry config experimental.new-installer false",
		"COPY /.pyproject.toml /tmp/poetry/pyproject.toml",
		"RUN cd /tmp/poetry && \\ ",
		"  poetry config virtualenvs.create false && \\ ",
		"poetry install --no-root --with a,b --without c --only d,e --compile")
	instWantContext(t, l, modal.ContextInput{Local: pp, Remote: "/.pyproject.toml"})
	// poetry_version=None: no pip install line; "latest" is the default.
	instWant(t, base.PoetryInstallFromFile(pp, PoetryOptions{NoPoetryInstall: true, IgnoreLockfile: true}),
		"FROM base",
		"COPY /.pyproject.toml /tmp/poetry/pyproject.toml",
		"RUN cd /tmp/poetry && \\ ",
		"  poetry config virtualenvs.create false && \\ ",
		"poetry install --no-root --compile")
	if got, want := base.PoetryInstallFromFile(pp, PoetryOptions{PoetryVersion: "latest"}).Commands(), base.PoetryInstallFromFile(pp, PoetryOptions{}).Commands(); !reflect.DeepEqual(got, want) {
		t.Errorf("latest = %q, default = %q", got, want)
	}

	// An explicit lock file ("~" expanded), which need not exist now.
	other := filepath.Join(dir, "locks", "other.lock")
	t.Setenv("HOME", dir)
	l = instLast(t, base.PoetryInstallFromFile("~/pyproject.toml", PoetryOptions{PoetryLockfile: "~/locks/other.lock"}))
	instWantContext(t, l, modal.ContextInput{Local: pp, Remote: "/.pyproject.toml"}, modal.ContextInput{Local: other, Remote: "/.poetry.lock"})

	const m = "poetry_install_from_file"
	nolock := instWrite(t, filepath.Join(dir, "nolock", "pyproject.toml"), "")
	instWantErr(t, base.PoetryInstallFromFile(nolock, PoetryOptions{}), m,
		"poetry.lock not found at inferred location: "+filepath.Join(dir, "nolock", "poetry.lock")+". If a lockfile is not needed, `ignore_lockfile=True` can be used.")
	t.Chdir(filepath.Join(dir, "nolock"))
	instWantErr(t, base.PoetryInstallFromFile("pyproject.toml", PoetryOptions{}), m,
		"poetry.lock not found at inferred location: "+filepath.Join(dir, "nolock", "poetry.lock")+". If a lockfile is not needed, `ignore_lockfile=True` can be used.")
	if err := base.PoetryInstallFromFile(nolock, PoetryOptions{IgnoreLockfile: true}).Err(); err != nil {
		t.Errorf("ignore_lockfile: %v", err)
	}
	instWantErr(t, base.PoetryInstallFromFile(pp, PoetryOptions{NoPoetryInstall: true, PoetryVersion: "1.8"}), m,
		`PoetryVersion "1.8" and NoPoetryInstall (poetry_version=None) contradict each other: give one`)
}

func TestInstallMicromamba(t *testing.T) {
	img := Micromamba("3.12")
	l := instWant(t, img,
		"FROM mambaorg/micromamba:2.1.1-debian12-slim",
		`SHELL ["/usr/local/bin/_dockerfile_shell.sh"]`,
		"ENV MAMBA_DOCKERFILE_ACTIVATE=1",
		"RUN micromamba install -n base -y python=3.12 pip -c conda-forge",
		`CMD ["sleep", "172800"]`)
	if l.Root == nil || l.Root.FromID != "mambaorg/micromamba:2.1.1-debian12-slim" || l.Root.Debian != nil || l.Method != "micromamba" {
		t.Errorf("root = %+v", l.Root)
	}
	ins := instParse(t, l, tFrom, tShell, tEnv, tRun, tCmd)
	if ins[0].FromRef() != MicromambaImage {
		t.Errorf("FROM ref = %q", ins[0].FromRef())
	}
	if s := ins[1].Cmd.(*instructions.ShellCommand); !reflect.DeepEqual(s.Shell, []string{"/usr/local/bin/_dockerfile_shell.sh"}) {
		t.Errorf("SHELL = %q", s.Shell)
	}
	if c := ins[4].Cmd.(*instructions.CmdCommand); c.PrependShell || !reflect.DeepEqual(c.CmdLine, []string{"sleep", "172800"}) {
		t.Errorf("CMD = %+v", c.ShellDependantCmdLine)
	}

	instWant(t, Micromamba(""), "FROM mambaorg/micromamba:2.1.1-debian12-slim",
		`SHELL ["/usr/local/bin/_dockerfile_shell.sh"]`, "ENV MAMBA_DOCKERFILE_ACTIVATE=1",
		"RUN micromamba install -n base -y python="+DefaultPythonVersion+" pip -c conda-forge", `CMD ["sleep", "172800"]`)
	for _, v := range []string{"3.10", "3.11.9", "3.13", "3.14", "3.12.1rc1"} {
		l := instLast(t, Micromamba(v))
		if want := "RUN micromamba install -n base -y python=" + v + " pip -c conda-forge"; l.Commands[3] != want {
			t.Errorf("%s: %q, want %q", v, l.Commands[3], want)
		}
	}
	l = instLast(t, Micromamba("3.11", ForceBuild()))
	if !l.ForceBuild {
		t.Error("ForceBuild not applied")
	}
	// Chained methods work on it.
	instWant(t, Micromamba("3.11").MicromambaInstall([]string{"numpy"}, MicromambaOptions{}), "FROM base", "RUN micromamba install numpy --yes")

	const series = "['3.10', '3.11', '3.12', '3.13', '3.14', '3.14t']"
	for v, want := range map[string]string{
		"3":       "Invalid Python version: '3'",
		"python3": "Invalid Python version: 'python3'",
		"3.12t":   "Free threaded Python is not supported with Image.micromamba",
		"3.14.0t": "Free threaded Python is not supported with Image.micromamba",
		"3.9":     "Unsupported Python version: '3.9'. When using the '2025.06' Image builder, Modal supports the following series: " + series + ".",
		"3.12rc1": "Unsupported Python version: '3.12rc1'. When using the '2025.06' Image builder, Modal supports the following series: " + series + ".",
	} {
		instWantErr(t, Micromamba(v), "micromamba", want)
	}
	if err := Micromamba("3.11", GPU("t4:x")).Err(); err == nil {
		t.Error("bad GPU request: no error")
	}
}

func TestInstallMicromambaInstall(t *testing.T) {
	base := Micromamba("3.11")
	dir := t.TempDir()
	spec := instWrite(t, filepath.Join(dir, "env.yml"), "dependencies: [numpy]\n")

	// §11's three examples.
	l := instWant(t, base.MicromambaInstall([]string{"torch=2.2", "transformers<4.23.0"}, MicromambaOptions{SpecFile: spec, Channels: []string{"conda-forge", "my-channel"}}),
		"FROM base",
		"COPY /env.yml /env.yml",
		"RUN micromamba install torch=2.2 'transformers<4.23.0' -f /env.yml -n base -c conda-forge -c my-channel --yes")
	instWantContext(t, l, modal.ContextInput{Local: spec, Remote: "/env.yml"})
	ins := instParse(t, l, tFrom, tCopy, tRun)
	if c := ins[1].Cmd.(*instructions.CopyCommand); c.From != "" || !reflect.DeepEqual(c.SourcePaths, []string{"/env.yml"}) || c.DestPath != "/env.yml" {
		t.Errorf("COPY = %+v", c)
	}
	l = instWant(t, base.MicromambaInstall(nil, MicromambaOptions{SpecFile: spec}),
		"FROM base", "COPY /env.yml /env.yml", "RUN micromamba install -f /env.yml -n base --yes")
	instWantContext(t, l, modal.ContextInput{Local: spec, Remote: "/env.yml"})
	l = instWant(t, base.MicromambaInstall([]string{"numpy"}, MicromambaOptions{}), "FROM base", "RUN micromamba install numpy --yes")
	instWantContext(t, l)
	instParse(t, l, tFrom, tRun)

	// Not sorted; channels without a spec.
	instWant(t, base.MicromambaInstall([]string{"zlib", "cudatoolkit=11.8"}, MicromambaOptions{Channels: []string{"nvidia"}}),
		"FROM base", "RUN micromamba install zlib cudatoolkit=11.8 -c nvidia --yes")
	// "~" expanded.
	t.Setenv("HOME", dir)
	l = instLast(t, base.MicromambaInstall(nil, MicromambaOptions{SpecFile: "~/env.yml"}))
	instWantContext(t, l, modal.ContextInput{Local: spec, Remote: "/env.yml"})

	instSame(t, base.MicromambaInstall(nil, MicromambaOptions{Channels: []string{"conda-forge"}}), base)
	instWantErr(t, base.MicromambaInstall(nil, MicromambaOptions{SpecFile: dir + "/"}), "micromamba_install",
		`spec_file: "`+dir+`/" is not a file path`)
}
