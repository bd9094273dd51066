package snapbuild

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/snapbuild/snapbuild/internal/modal"
)

// Unit tests of how Image methods lower to Dockerfile commands: Modal's
// 2025.06 texts, as each method's godoc quotes them.

// uLayers returns img's commands, failing the test if img carries an error.
func uLayers(t *testing.T, img Image) [][]string {
	t.Helper()
	if err := img.Err(); err != nil {
		t.Fatalf("unexpected image error: %v", err)
	}
	return img.Commands()
}

// uLastLayer returns the commands of img's last layer.
func uLastLayer(t *testing.T, img Image) []string {
	t.Helper()
	ls := uLayers(t, img)
	if len(ls) == 0 {
		t.Fatal("image has no layers")
	}
	return ls[len(ls)-1]
}

func uWantCommands(t *testing.T, got, want []string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("commands:\n got  %q\n want %q", got, want)
	}
}

// uWantErr checks that img's error is an *InvalidError of method whose
// Error() is exactly want.
func uWantErr(t *testing.T, img Image, method, want string) {
	t.Helper()
	err := img.Err()
	if err == nil {
		t.Fatalf("want error %q, got none (commands %q)", want, img.Commands())
	}
	var ie *InvalidError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v (%T) is not an *InvalidError", err, err)
	}
	if ie.Method != method {
		t.Errorf("error method = %q, want %q", ie.Method, method)
	}
	if err.Error() != want {
		t.Errorf("error text:\n got  %q\n want %q", err.Error(), want)
	}
}

func uBase(t *testing.T) Image {
	t.Helper()
	img := DebianSlim("3.11")
	if err := img.Err(); err != nil {
		t.Fatal(err)
	}
	return img
}

func TestLoweringDebianSlimCommands(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    []string
	}{
		{"3.11", []string{"FROM python:3.11-slim-bookworm", `CMD ["sleep", "172800"]`}},
		{"3.13", []string{"FROM python:3.13-slim-trixie", `CMD ["sleep", "172800"]`}},
		{"", []string{"FROM python:3.11-slim-bookworm", `CMD ["sleep", "172800"]`}}, // DefaultPythonVersion
		// Series Debian does not ship, and micro pins: decided at build time.
		{"3.10", []string{"FROM python:3.10-slim-bookworm", `CMD ["sleep", "172800"]`}},
		{"3.12", []string{"FROM python:3.12-slim-bookworm", `CMD ["sleep", "172800"]`}},
		{"3.14", []string{"FROM python:3.14-slim-bookworm", `CMD ["sleep", "172800"]`}},
		{"3.12.3", []string{"FROM python:3.12.3-slim-bookworm", `CMD ["sleep", "172800"]`}},
		{"3.13.3", []string{"FROM python:3.13.3-slim-bookworm", `CMD ["sleep", "172800"]`}},
	} {
		t.Run(tc.version, func(t *testing.T) {
			img := DebianSlim(tc.version)
			ls := uLayers(t, img)
			if len(ls) != 1 {
				t.Fatalf("got %d layers, want 1", len(ls))
			}
			uWantCommands(t, ls[0], tc.want)
			root := img.layers[0].Root
			if root == nil || root.Debian == nil {
				t.Fatalf("root layer has no debian base: %+v", root)
			}
			wantSuite := map[string]string{"3.13": "trixie"}[tc.version]
			if wantSuite == "" {
				wantSuite = "bookworm"
			}
			if root.Debian.Suite != wantSuite {
				t.Errorf("suite = %q, want %q", root.Debian.Suite, wantSuite)
			}
			if img.layers[0].Method != "debian_slim" {
				t.Errorf("method = %q", img.layers[0].Method)
			}
		})
	}
	if DefaultPythonVersion != "3.11" {
		t.Errorf("DefaultPythonVersion = %q, want 3.11", DefaultPythonVersion)
	}
}

func TestLoweringDebianSlimErrors(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    string // full Error() text
	}{
		{"3.14t", "debian_slim: Free threaded Python is not supported with Image.debian_slim"},
		{"2.7", `debian_slim: Invalid Python version: '2.7'`},
		{"abc", `debian_slim: Invalid Python version: 'abc'`},
		{"3", `debian_slim: Invalid Python version: '3'`},
		{"3.11.8.1", `debian_slim: Invalid Python version: '3.11.8.1'`},
		{"3.9", `debian_slim: Unsupported Python version: '3.9'. When using the '2025.06' Image builder, Modal supports the following series: ['3.10', '3.11', '3.12', '3.13', '3.14', '3.14t'].`},
	} {
		t.Run(tc.version, func(t *testing.T) {
			img := DebianSlim(tc.version)
			uWantErr(t, img, "debian_slim", tc.want)
			if len(img.layers) != 0 {
				t.Errorf("failed image has %d layers", len(img.layers))
			}
			// Chaining keeps the first error.
			next := img.AptInstall([]string{"git"}).RunCommands([]string{"true"})
			if next.Err() != img.Err() {
				t.Errorf("chained error = %v, want the original %v", next.Err(), img.Err())
			}
		})
	}
}

// Modal's messages use Python's repr: Invalid Python version: '2.7'.
func TestLoweringDebianSlimErrorQuotingAsModal(t *testing.T) {
	err := DebianSlim("2.7").Err()
	if err == nil {
		t.Fatal("no error")
	}
	if want := "debian_slim: Invalid Python version: '2.7'"; err.Error() != want {
		t.Fatalf("BUG (minor): image.go DebianSlim formats the version with %%q (Go double quotes) where Modal's message uses Python repr (single quotes): got %q, Modal has %q", err, want)
	}
}

func TestLoweringAptInstall(t *testing.T) {
	base := uBase(t)
	img := base.AptInstall([]string{"git", "libfoo>=1"})
	ls := uLayers(t, img)
	if len(ls) != 2 {
		t.Fatalf("got %d layers, want 2", len(ls))
	}
	uWantCommands(t, ls[1], []string{"FROM base", "RUN apt-get update", "RUN apt-get install -y git 'libfoo>=1'"})

	// Order preserved, not sorted.
	uWantCommands(t, uLastLayer(t, base.AptInstall([]string{"zlib1g", "curl", "Abc", "a b"})),
		[]string{"FROM base", "RUN apt-get update", "RUN apt-get install -y zlib1g curl Abc 'a b'"})

	if img.layers[1].Method != "apt_install" {
		t.Errorf("method = %q", img.layers[1].Method)
	}
}

func TestLoweringEmptyInputsReturnSameImage(t *testing.T) {
	base := uBase(t).AptInstall([]string{"git"})
	for name, img := range map[string]Image{
		"apt_install nil":    base.AptInstall(nil),
		"apt_install empty":  base.AptInstall([]string{}),
		"run_commands nil":   base.RunCommands(nil),
		"run_commands empty": base.RunCommands([]string{}),
		"pip_install nil":    base.PipInstall(nil),
		"pip_install empty":  base.PipInstall([]string{}),
	} {
		if img.Err() != nil {
			t.Errorf("%s: error %v", name, img.Err())
		}
		if len(img.layers) != len(base.layers) {
			t.Errorf("%s: %d layers, want %d", name, len(img.layers), len(base.layers))
			continue
		}
		for i := range img.layers {
			if img.layers[i] != base.layers[i] {
				t.Errorf("%s: layer %d is not the receiver's layer", name, i)
			}
		}
	}
}

func TestLoweringRunCommands(t *testing.T) {
	img := uBase(t).RunCommands([]string{"cd /tmp", "echo 'a  b' > x", "  spaced  "})
	uWantCommands(t, uLastLayer(t, img), []string{"FROM base", "RUN cd /tmp", "RUN echo 'a  b' > x", "RUN   spaced  "})
	if m := img.layers[1].Method; m != "run_commands" {
		t.Errorf("method = %q", m)
	}
}

func TestLoweringPipInstall(t *testing.T) {
	base := uBase(t)
	// Modal's example: Python code-point order, quoting only when needed.
	uWantCommands(t, uLastLayer(t, base.PipInstall([]string{"numpy", "aiohttp[speedups]>=3", "Zlib", "Django"})),
		[]string{"FROM base", "RUN python -m pip install Django Zlib 'aiohttp[speedups]>=3' numpy"})
	uWantCommands(t, uLastLayer(t, base.PipInstall([]string{"transformers==4.23.0", "torch~=2.2", "a b"})),
		[]string{"FROM base", "RUN python -m pip install 'a b' 'torch~=2.2' transformers==4.23.0"})
	// Code points, as Python's sorted(): "Z9" < "Zlib" < "_x" < "a-b" < "a.b" < "a_b" < "zz" < "éclair".
	uWantCommands(t, uLastLayer(t, base.PipInstall([]string{"éclair", "zz", "a_b", "a.b", "a-b", "_x", "Zlib", "Z9"})),
		[]string{"FROM base", "RUN python -m pip install Z9 Zlib _x a-b a.b a_b zz 'éclair'"})

	// The input slice is not reordered.
	in := []string{"b", "a"}
	base.PipInstall(in)
	if in[0] != "b" || in[1] != "a" {
		t.Errorf("PipInstall reordered its argument: %q", in)
	}

	for _, bad := range [][]string{{"numpy", "-r requirements.txt"}, {"--pre"}, {"-"}} {
		uWantErr(t, base.PipInstall(bad), "pip_install",
			"pip_install: Package list for `Image.pip_install` cannot contain other arguments; try the `extra_options` parameter instead.")
	}
}

func TestLoweringEnv(t *testing.T) {
	base := uBase(t)
	img := base.Env(map[string]string{"C": "", "B": "$HOME", "A": "x y", "D": "plain/val:1"})
	uWantCommands(t, uLastLayer(t, img), []string{"FROM base", "ENV A='x y'", "ENV B='$HOME'", "ENV C=''", "ENV D=plain/val:1"})
	if m := img.layers[1].Method; m != "env" {
		t.Errorf("method = %q", m)
	}

	// EnvVars keeps the given order.
	uWantCommands(t, uLastLayer(t, base.EnvVars(EnvVar{"Z", "1"}, EnvVar{"A", "it's"}, EnvVar{"M", "a\"b"})),
		[]string{"FROM base", "ENV Z=1", `ENV A='it'"'"'s'`, `ENV M='a"b'`})

	for _, name := range []string{"", "A=B", "A B", "A\tB", "A\nB"} {
		err := base.EnvVars(EnvVar{name, "x"}).Err()
		if err == nil {
			t.Errorf("EnvVars name %q: no error", name)
			continue
		}
		if !strings.HasPrefix(err.Error(), "env: invalid variable name ") {
			t.Errorf("EnvVars name %q: error %q", name, err)
		}
	}
}

func TestLoweringWorkdir(t *testing.T) {
	base := uBase(t)
	uWantCommands(t, uLastLayer(t, base.Workdir("/my dir")), []string{"FROM base", "WORKDIR '/my dir'"})
	uWantCommands(t, uLastLayer(t, base.Workdir("/work")), []string{"FROM base", "WORKDIR /work"})
	uWantCommands(t, uLastLayer(t, base.Workdir("rel/sub")), []string{"FROM base", "WORKDIR rel/sub"})
	uWantErr(t, base.Workdir(""), "workdir", "workdir: empty path")
}

func TestLoweringExecForms(t *testing.T) {
	base := uBase(t)
	for _, tc := range []struct {
		name string
		img  Image
		want string
	}{
		{"entrypoint", base.Entrypoint([]string{"a", "b"}), `ENTRYPOINT ["a", "b"]`},
		{"entrypoint empty", base.Entrypoint([]string{}), `ENTRYPOINT []`},
		{"entrypoint nil", base.Entrypoint(nil), `ENTRYPOINT []`},
		{"cmd", base.Cmd([]string{"python", "app.py"}), `CMD ["python", "app.py"]`},
		{"cmd empty", base.Cmd([]string{}), `CMD []`},
		{"shell", base.Shell([]string{"/bin/bash", "-c"}), `SHELL ["/bin/bash", "-c"]`},
		{"shell empty", base.Shell(nil), `SHELL []`},
		{"spaces kept", base.Cmd([]string{"a b", " c "}), `CMD ["a b", " c "]`},
		// snapbuild escapes '"' and '\' (a deliberate fix over Modal, whose text is invalid JSON).
		{"quote escaped", base.Entrypoint([]string{"/bin/sh", "-c", `echo "x"`}), `ENTRYPOINT ["/bin/sh", "-c", "echo \"x\""]`},
		{"backslash escaped", base.Cmd([]string{`a\b`, `\"`}), `CMD ["a\\b", "\\\""]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uWantCommands(t, uLastLayer(t, tc.img), []string{"FROM base", tc.want})
		})
	}
	if m := base.Entrypoint(nil).layers[1].Method; m != "entrypoint" {
		t.Errorf("method = %q", m)
	}
	if m := base.Cmd(nil).layers[1].Method; m != "cmd" {
		t.Errorf("method = %q", m)
	}
	if m := base.Shell(nil).layers[1].Method; m != "shell" {
		t.Errorf("method = %q", m)
	}
}

// An exec-form argument containing a newline must not break the Dockerfile
// line: the lowered layer must still parse to a single instruction.
func TestLoweringExecFormControlCharacters(t *testing.T) {
	img := uBase(t).Cmd([]string{"a\nb"})
	ins, err := modal.ParseCommands(uLastLayer(t, img))
	if err != nil || len(ins) != 2 {
		t.Fatalf("BUG (minor): image.go jsonList escapes only '\"' and '\\\\', so a newline (or other control "+
			"character) in an ENTRYPOINT/CMD/SHELL item splits the Dockerfile line and the layer fails to parse at build time "+
			"(got %d instructions, err %v); escape control characters as JSON does (e.g. strconv.Quote-like \\n, \\t, \\u00XX) "+
			"or reject them at call time", len(ins), err)
	}
	c, ok := ins[1].Cmd.(*instructions.CmdCommand)
	if !ok || c.PrependShell || !reflect.DeepEqual(c.CmdLine, []string{"a\nb"}) {
		t.Errorf("second instruction is %T %+v", ins[1].Cmd, ins[1].Cmd)
	}
}

func TestLoweringAddLocalFile(t *testing.T) {
	base := uBase(t)
	img := base.AddLocalFile("/src/data/model.bin", "/app/model.bin", true)
	uWantCommands(t, uLastLayer(t, img), []string{"FROM base", "COPY . /"})
	l := img.layers[1]
	if l.Method != "add_local_file" {
		t.Errorf("method = %q", l.Method)
	}
	if want := []modal.ContextInput{{Local: "/src/data/model.bin", Remote: "/app/model.bin"}}; !reflect.DeepEqual(l.Context, want) {
		t.Errorf("context = %+v, want %+v", l.Context, want)
	}

	// Trailing slash: the local file's base name is appended.
	img = base.AddLocalFile("rel/dir/config.yaml", "/etc/app/", true)
	if got := img.layers[1].Context[0].Remote; got != "/etc/app/config.yaml" {
		t.Errorf("trailing slash remote = %q, want /etc/app/config.yaml", got)
	}
	if got := img.layers[1].Context[0].Local; got != "rel/dir/config.yaml" {
		t.Errorf("local = %q (must be kept as given and resolved at build time)", got)
	}
	img = base.AddLocalFile("/x/f.txt", "/", true)
	if got := img.layers[1].Context[0].Remote; got != "/f.txt" {
		t.Errorf("remote for \"/\" = %q, want /f.txt", got)
	}
	// Remote path is cleaned.
	img = base.AddLocalFile("/x/f.txt", "/a/./b//c.txt", true)
	if got := img.layers[1].Context[0].Remote; got != "/a/b/c.txt" {
		t.Errorf("remote = %q, want /a/b/c.txt", got)
	}

	for _, rel := range []string{"app/model.bin", "./x", "", "~/x"} {
		uWantErr(t, base.AddLocalFile("/src/f", rel, true), "add_local_file",
			"add_local_file: image.add_local_file() currently only supports absolute remote_path values")
	}
	m := base.AddLocalFile("/src/f", "/app/f", false)
	if m.Err() != nil || !m.layers[len(m.layers)-1].Mount {
		t.Errorf("copy=false: %v, want a mount layer", m.Err())
	}
	// A build step after a copy=False layer fails at build time;
	// more copy=False layers are fine.
	after := m.AddLocalDir("/src", "/d", false, nil).RunCommands([]string{"true"})
	if after.Err() != nil {
		t.Fatalf("chaining is lazy: %v", after.Err())
	}
	_, err := uBuilder(t).Build(t.Context(), after)
	if err == nil || !strings.HasPrefix(err.Error(), "run_commands: An image tried to run a build step after using `image.add_local_*` to include local files.") {
		t.Errorf("build step after copy=False: %v", err)
	}
}

func TestLoweringAddLocalDir(t *testing.T) {
	base := uBase(t)
	patterns := []string{"*.pyc", "!keep.pyc"}
	ignore := NewFilePatternMatcher(patterns...)
	img := base.AddLocalDir("data/sub", "/place/", true, ignore)
	uWantCommands(t, uLastLayer(t, img), []string{"FROM base", "COPY . /"})
	l := img.layers[1]
	want := []modal.ContextInput{{Local: "data/sub", Remote: "/place", Dir: true, Ignore: ignore}}
	if !reflect.DeepEqual(l.Context, want) {
		t.Errorf("context = %+v, want %+v", l.Context, want)
	}
	patterns[0] = "changed"
	if got, _ := ignore.Patterns(); got[0] != "*.pyc" {
		t.Error("NewFilePatternMatcher keeps a reference to the caller's slice")
	}
	uWantErr(t, base.AddLocalDir("data", "place", true, nil), "add_local_dir",
		"add_local_dir: image.add_local_dir() currently only supports absolute remote_path values")
	m := base.AddLocalDir("data", "/place", false, nil)
	if m.Err() != nil || !m.layers[len(m.layers)-1].Mount || len(m.layers[len(m.layers)-1].Commands) != 0 {
		t.Errorf("copy=false: %v, want a mount layer without commands", m.Err())
	}
}

func TestLoweringZeroImage(t *testing.T) {
	var zero Image
	const tmpl = "%s: Image has not been constructed yet. Use one of the static factory methods prior to calling %s like `DebianSlim` or `FromID`"
	for _, tc := range []struct {
		method string
		img    Image
	}{
		{"apt_install", zero.AptInstall([]string{"git"})},
		{"run_commands", zero.RunCommands([]string{"true"})},
		{"pip_install", zero.PipInstall([]string{"numpy"})},
		{"env", zero.Env(map[string]string{"A": "b"})},
		{"env", zero.EnvVars(EnvVar{"A", "b"})},
		{"workdir", zero.Workdir("/w")},
		{"entrypoint", zero.Entrypoint([]string{"a"})},
		{"cmd", zero.Cmd([]string{"a"})},
		{"shell", zero.Shell([]string{"a"})},
		{"add_local_file", zero.AddLocalFile("/a", "/b", true)},
		{"add_local_dir", zero.AddLocalDir("/a", "/b", true, nil)},
	} {
		t.Run(tc.method, func(t *testing.T) {
			want := strings.ReplaceAll(tmpl, "%s", tc.method)
			uWantErr(t, tc.img, tc.method, want)
			if len(tc.img.layers) != 0 {
				t.Errorf("zero image gained %d layers", len(tc.img.layers))
			}
		})
	}
	if zero.Err() != nil {
		t.Errorf("zero Image Err() = %v", zero.Err())
	}
	if len(zero.Commands()) != 0 {
		t.Errorf("zero Image Commands() = %q", zero.Commands())
	}
}

func TestLoweringFromID(t *testing.T) {
	img := FromID("im-abc")
	uWantCommands(t, uLastLayer(t, img), []string{"FROM im-abc"})
	if img.layers[0].Root == nil || img.layers[0].Root.FromID != "im-abc" {
		t.Errorf("root = %+v", img.layers[0].Root)
	}
	uWantErr(t, FromID(""), "from_id", "from_id: empty image ID")
}

func TestLoweringImmutability(t *testing.T) {
	base := uBase(t)
	a := base.AptInstall([]string{"git"})
	b := base.RunCommands([]string{"echo b"})
	if n := len(base.Commands()); n != 1 {
		t.Fatalf("base has %d layers after chaining, want 1", n)
	}
	uWantCommands(t, uLastLayer(t, a), []string{"FROM base", "RUN apt-get update", "RUN apt-get install -y git"})
	uWantCommands(t, uLastLayer(t, b), []string{"FROM base", "RUN echo b"})

	// Two children of one multi-layer image must not share an appended slot.
	a1 := a.RunCommands([]string{"echo 1"})
	a2 := a.RunCommands([]string{"echo 2"})
	uWantCommands(t, uLastLayer(t, a1), []string{"FROM base", "RUN echo 1"})
	uWantCommands(t, uLastLayer(t, a2), []string{"FROM base", "RUN echo 2"})
	if len(a.Commands()) != 2 || len(a1.Commands()) != 3 || len(a2.Commands()) != 3 {
		t.Errorf("layer counts a=%d a1=%d a2=%d", len(a.Commands()), len(a1.Commands()), len(a2.Commands()))
	}
	// Errors do not leak back either.
	bad := a.Workdir("")
	if a.Err() != nil || bad.Err() == nil {
		t.Errorf("a.Err()=%v bad.Err()=%v", a.Err(), bad.Err())
	}

	// Commands returns copies.
	cmds := a.Commands()
	cmds[1][1] = "RUN rm -rf /"
	if a.Commands()[1][1] != "RUN apt-get update" {
		t.Error("mutating Commands() output changed the image")
	}

	// Step options apply to the new layer only.
	f := a.RunCommands([]string{"x"}, ForceBuild(), BuildEnv(map[string]string{"K": "v"}))
	if !f.layers[2].ForceBuild || f.layers[2].BuildEnv["K"] != "v" {
		t.Errorf("options not applied: %+v", f.layers[2])
	}
	if a.layers[0].ForceBuild || a.layers[1].ForceBuild || a.layers[1].BuildEnv != nil {
		t.Error("options leaked into earlier layers")
	}
	// BuildEnv copies its map.
	m := map[string]string{"K": "1"}
	g := a.RunCommands([]string{"x"}, BuildEnv(m))
	m["K"] = "2"
	if g.layers[2].BuildEnv["K"] != "1" {
		t.Error("BuildEnv keeps a reference to the caller's map")
	}
	// Options on the root constructor.
	if r := DebianSlim("3.11", ForceBuild()); !r.layers[0].ForceBuild {
		t.Error("DebianSlim ignored ForceBuild")
	}
}

func TestShlexQuoteMatchesPython(t *testing.T) {
	// Expected values are Python 3's shlex.quote outputs.
	for _, tc := range []struct{ in, want string }{
		{"", "''"},
		{"abc", "abc"},
		{"ABC_xyz09", "ABC_xyz09"},
		{"a@b%c+d=e:f,g./h-i_J9", "a@b%c+d=e:f,g./h-i_J9"},
		{"transformers==4.23.0", "transformers==4.23.0"},
		{"-", "-"},
		{"/usr/bin", "/usr/bin"},
		{"a b", "'a b'"},
		{"it's", `'it'"'"'s'`},
		{"'", `''"'"''`},
		{"''", `''"'"''"'"''`},
		{"$HOME", "'$HOME'"},
		{"~", "'~'"},
		{"é", "'é'"},
		{"a\nb", "'a\nb'"},
		{"\t", "'\t'"},
		{"*", "'*'"},
		{"libfoo>=1", "'libfoo>=1'"},
		{"aiohttp[speedups]>=3", "'aiohttp[speedups]>=3'"},
		{`x"y`, `'x"y'`},
		{`a\b`, `'a\b'`},
		{"!", "'!'"},
		{"#", "'#'"},
		{"&", "'&'"},
		{";", "';'"},
		{"(", "'('"},
		{"{", "'{'"},
		{"^", "'^'"},
		{"?", "'?'"},
		{"`", "'`'"},
		{"|", "'|'"},
	} {
		if got := modal.ShlexQuote(tc.in); got != tc.want {
			t.Errorf("modal.ShlexQuote(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := shlexJoin([]string{"git", "libfoo>=1", ""}); got != "git 'libfoo>=1' ''" {
		t.Errorf("shlexJoin = %q", got)
	}
	if got := shlexJoin(nil); got != "" {
		t.Errorf("shlexJoin(nil) = %q", got)
	}
}

// The remote path with a trailing slash uses the local path's base name, as
// given (not resolved): a symlink keeps the link's name.
func TestLoweringAddLocalFileBaseName(t *testing.T) {
	img := uBase(t).AddLocalFile(filepath.Join("a", "link.txt"), "/d/", true)
	if got := img.layers[1].Context[0].Remote; got != "/d/link.txt" {
		t.Errorf("remote = %q", got)
	}
}

func TestRunCommandsLineBreaks(t *testing.T) {
	base := DebianSlim("3.11")
	for _, ok := range []string{"echo a && \\\n  echo b", "echo a \\\r\necho b", "echo trailing\n"} {
		if err := base.RunCommands([]string{ok}).Err(); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	err := base.RunCommands([]string{"set -e\nmkdir /x"}).Err()
	if err == nil || !strings.Contains(err.Error(), "holds a line break") || !strings.Contains(err.Error(), `end them with \,`) {
		t.Errorf("bare newline: %v", err)
	}
}
