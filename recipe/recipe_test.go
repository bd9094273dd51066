package recipe

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild"
	"github.com/snapbuild/snapbuild/oci"
)

func parse(t *testing.T, src string) []Image {
	t.Helper()
	imgs, err := Parse([]byte(src), "/recipes", "default")
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror: %v", src, err)
	}
	return imgs
}

func parseOne(t *testing.T, src string) snapbuild.Image {
	t.Helper()
	imgs := parse(t, src)
	if len(imgs) != 1 {
		t.Fatalf("got %d images, want 1", len(imgs))
	}
	if imgs[0].Name != "default" {
		t.Errorf("name = %q, want the default name", imgs[0].Name)
	}
	if err := imgs[0].Image.Err(); err != nil {
		t.Fatalf("image error: %v", err)
	}
	return imgs[0].Image
}

func parseErr(t *testing.T, src string) error {
	t.Helper()
	_, err := Parse([]byte(src), "/recipes", "default")
	if err == nil {
		t.Fatalf("Parse:\n%s\nno error", src)
	}
	return err
}

func sameCommands(t *testing.T, got, want snapbuild.Image) {
	t.Helper()
	if err := want.Err(); err != nil {
		t.Fatalf("reference image error: %v", err)
	}
	if !reflect.DeepEqual(got.Commands(), want.Commands()) {
		t.Errorf("commands:\n got  %q\n want %q", got.Commands(), want.Commands())
	}
}

func TestParseListForm(t *testing.T) {
	img := parseOne(t, `
# a comment
- debian_slim: {python_version: "3.11"}
- apt_install: [git, "libfoo>=1"]
- pip_install: [numpy, Django]
- run_commands: ["echo a", "cd /tmp"]
- env: {B: "$HOME", A: "x y"}
- workdir: "/my dir"
- entrypoint: ["/bin/sh", "-c"]
- cmd: []
- shell: ["/bin/bash", "-c"]
`)
	want := snapbuild.DebianSlim("3.11").
		AptInstall([]string{"git", "libfoo>=1"}).
		PipInstall([]string{"numpy", "Django"}).
		RunCommands([]string{"echo a", "cd /tmp"}).
		EnvVars(snapbuild.EnvVar{Name: "B", Value: "$HOME"}, snapbuild.EnvVar{Name: "A", Value: "x y"}). // file order kept
		Workdir("/my dir").
		Entrypoint([]string{"/bin/sh", "-c"}).
		Cmd([]string{}).
		Shell([]string{"/bin/bash", "-c"})
	sameCommands(t, img, want)
	// Spot-check the text, so that a shared mistake in both is caught too.
	cmds := img.Commands()
	if got := cmds[4]; !reflect.DeepEqual(got, []string{"FROM base", "ENV B='$HOME'", "ENV A='x y'"}) {
		t.Errorf("env layer = %q", got)
	}
	if got := cmds[7]; !reflect.DeepEqual(got, []string{"FROM base", "CMD []"}) {
		t.Errorf("cmd layer = %q", got)
	}
}

func TestParseJSONRecipe(t *testing.T) {
	img := parseOne(t, `[{"debian_slim": {"python_version": "3.13"}}, {"apt_install": ["git"]}]`)
	sameCommands(t, img, snapbuild.DebianSlim("3.13").AptInstall([]string{"git"}))
}

func TestParseMappingForm(t *testing.T) {
	imgs := parse(t, `
zeta:
  - debian_slim: "3.11"
  - apt_install: [git]
alpha:
  - from_id: zeta
  - pip_install: numpy
`)
	if len(imgs) != 2 || imgs[0].Name != "zeta" || imgs[1].Name != "alpha" {
		t.Fatalf("images = %+v, want zeta then alpha (file order)", imgs)
	}
	zeta := snapbuild.DebianSlim("3.11").AptInstall([]string{"git"})
	sameCommands(t, imgs[0].Image, zeta)
	// from_id of an image of the same recipe builds on its definition.
	sameCommands(t, imgs[1].Image, zeta.PipInstall([]string{"numpy"}))

	// Whatever the order in the file: the used image comes first.
	imgs = parse(t, `
child:
  - from_id: parent
  - run_commands: ["true"]
parent:
  - debian_slim: null
other:
  - from_id: im-0123456789012345678901
`)
	if len(imgs) != 3 || imgs[0].Name != "parent" || imgs[1].Name != "child" || imgs[2].Name != "other" {
		t.Fatalf("build order = %+v, want parent, child, other", imgs)
	}
	sameCommands(t, imgs[1].Image, snapbuild.DebianSlim("").RunCommands([]string{"true"}))
	sameCommands(t, imgs[2].Image, snapbuild.FromID("im-0123456789012345678901"))

	err := parseErr(t, "a:\n  - from_id: b\nb:\n  - from_id: a\n")
	if want := `image "a": line 2: image "b": line 4: image "a": from_id makes a cycle through "a"`; err.Error() != want {
		t.Errorf("cycle: error %q, want %q", err, want)
	}

	err = parseErr(t, "a:\n  - debian_slim: null\nb: {debian_slim: null}\n")
	if want := `line 3: image "b": want a list of steps`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	err = parseErr(t, "a:\n  - debian_slim: null\nb:\n  - apt_install: [git]\n")
	if want := `image "b": line 4: the first step must make a base (debian_slim, micromamba, from_dockerfile, from_registry, from_id or from_scratch), not apt_install`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// Duplicate keys are invalid YAML; a second image of the same name would
// silently replace the first when tagged.
func TestParseMappingFormDuplicateName(t *testing.T) {
	imgs, err := Parse([]byte("a:\n  - debian_slim: null\na:\n  - debian_slim: \"3.13\"\n"), "/r", "d")
	if err == nil {
		t.Fatalf("BUG (minor): recipe.go Parse accepts duplicate image names in the mapping form (yaml.v3 does not "+
			"reject duplicate keys when decoding into a yaml.Node); got %d images. Fix: track names in a set and "+
			"return `line N: image %%q defined twice`", len(imgs))
	}
}

func TestParseArgumentForms(t *testing.T) {
	base := snapbuild.DebianSlim("3.11")
	for _, tc := range []struct {
		name string
		src  string
		want snapbuild.Image
	}{
		{"debian_slim null", "- debian_slim:\n", snapbuild.DebianSlim("")},
		{"debian_slim explicit null", "- debian_slim: null\n", snapbuild.DebianSlim("")},
		{"debian_slim empty mapping", "- debian_slim: {}\n", snapbuild.DebianSlim("")},
		{"debian_slim scalar", `- debian_slim: "3.13"` + "\n", snapbuild.DebianSlim("3.13")},
		{"debian_slim mapping", "- debian_slim: {python_version: '3.13', force_build: true}\n", snapbuild.DebianSlim("3.13")},
		{"from_id scalar", "- from_id: im-0123456789abcdefghijkl\n", snapbuild.FromID("im-0123456789abcdefghijkl")},
		{"from_id mapping", "- from_id: {image_id: myname}\n", snapbuild.FromID("myname")},
		{"apt list", "- debian_slim: null\n- apt_install: [git, curl]\n", base.AptInstall([]string{"git", "curl"})},
		{"apt scalar", "- debian_slim: null\n- apt_install: git\n", base.AptInstall([]string{"git"})},
		{"apt mapping", "- debian_slim: null\n- apt_install: {packages: [git], force_build: true, env: {A: b}}\n", base.AptInstall([]string{"git"})},
		{"apt mapping scalar", "- debian_slim: null\n- apt_install: {packages: git}\n", base.AptInstall([]string{"git"})},
		{"apt null", "- debian_slim: null\n- apt_install:\n", base},
		{"apt empty list", "- debian_slim: null\n- apt_install: []\n", base},
		{"apt nested list", "- debian_slim: null\n- apt_install: [git, [curl, wget], vim]\n", base.AptInstall([]string{"git", "curl", "wget", "vim"})},
		{"pip scalar", "- debian_slim: null\n- pip_install: 'torch~=2.2'\n", base.PipInstall([]string{"torch~=2.2"})},
		{"pip mapping", "- debian_slim: null\n- pip_install: {packages: [b, a]}\n", base.PipInstall([]string{"a", "b"})},
		{"run scalar", "- debian_slim: null\n- run_commands: echo hi\n", base.RunCommands([]string{"echo hi"})},
		{"run mapping", "- debian_slim: null\n- run_commands: {commands: [a, b], env: {TOKEN: x}}\n", base.RunCommands([]string{"a", "b"})},
		{"run null", "- debian_slim: null\n- run_commands: null\n", base},
		{"env short", "- debian_slim: null\n- env: {Z: '1', A: two words}\n", base.EnvVars(snapbuild.EnvVar{Name: "Z", Value: "1"}, snapbuild.EnvVar{Name: "A", Value: "two words"})},
		{"env long", "- debian_slim: null\n- env: {vars: {A: b}}\n", base.Env(map[string]string{"A": "b"})},
		{"workdir scalar", "- debian_slim: null\n- workdir: /w\n", base.Workdir("/w")},
		{"workdir mapping", "- debian_slim: null\n- workdir: {path: /w}\n", base.Workdir("/w")},
		{"entrypoint list", "- debian_slim: null\n- entrypoint: [a, b]\n", base.Entrypoint([]string{"a", "b"})},
		{"entrypoint mapping", "- debian_slim: null\n- entrypoint: {entrypoint_commands: [a]}\n", base.Entrypoint([]string{"a"})},
		{"entrypoint null", "- debian_slim: null\n- entrypoint: null\n", base.Entrypoint(nil)},
		{"cmd scalar", "- debian_slim: null\n- cmd: serve\n", base.Cmd([]string{"serve"})},
		{"cmd mapping", "- debian_slim: null\n- cmd: {cmd: [a, b]}\n", base.Cmd([]string{"a", "b"})},
		{"shell mapping", "- debian_slim: null\n- shell: {shell_commands: [/bin/bash, -c]}\n", base.Shell([]string{"/bin/bash", "-c"})},
		{"add_local_file", "- debian_slim: null\n- add_local_file: {local_path: /abs/f, remote_path: /r/, copy: true}\n", base.AddLocalFile("/abs/f", "/r/", true)},
		{"add_local_dir", "- debian_slim: null\n- add_local_dir: {local_path: /abs/d, remote_path: /r, copy: true, ignore: ['*.pyc', '!keep.pyc']}\n", base.AddLocalDir("/abs/d", "/r", true, snapbuild.NewFilePatternMatcher("*.pyc", "!keep.pyc"))},
		{"add_local_dir ignore scalar", "- debian_slim: null\n- add_local_dir: {local_path: /abs/d, remote_path: /r, copy: true, ignore: '*.pyc'}\n", base.AddLocalDir("/abs/d", "/r", true, snapbuild.NewFilePatternMatcher("*.pyc"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sameCommands(t, parseOne(t, tc.src), tc.want)
		})
	}
}

func TestParseErrors(t *testing.T) {
	supported := strings.Join(methodNames(), ", ")
	for _, m := range []string{"debian_slim", "from_id", "from_scratch", "apt_install", "run_commands", "add_local_dir"} {
		if !strings.Contains(supported, m) {
			t.Errorf("method %s is not in the table", m)
		}
	}
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unknown method", "- debian_slim: null\n- conda_install: [x]\n", `line 2: unknown method "conda_install"; supported: ` + supported},
		{"unknown argument", "- debian_slim: null\n- apt_install: {packages: [git], bogus: 1}\n", `line 2: apt_install: unknown argument "bogus" (known: env, force_build, gpu, packages, secrets)`},
		{"unknown argument debian_slim env", "- debian_slim: {env: {A: b}}\n", `line 1: debian_slim: unknown argument "env" (known: force_build, python_version)`},
		{"unknown argument workdir", "- debian_slim: null\n- workdir: {path: /w, force_build: true}\n", `line 2: workdir: unknown argument "force_build" (known: path)`},
		{"argument twice", "- debian_slim: null\n- apt_install: {packages: [a], packages: [b]}\n", `line 2: apt_install: argument "packages" given twice`},
		{"first step not a base", "- apt_install: [git]\n", "line 1: the first step must make a base (debian_slim, micromamba, from_dockerfile, from_registry, from_id or from_scratch), not apt_install"},
		{"base not first", "- debian_slim: null\n- run_commands: [x]\n- from_id: foo\n", "line 3: from_id makes a new base and can only be the first step"},
		{"float python_version", "- debian_slim: {python_version: 3.11}\n", "line 1: debian_slim: the `python_version` argument should be a string, not a float: quote it (\"3.11\")"},
		{"float python_version 3.10", "- debian_slim: {python_version: 3.10}\n", "line 1: debian_slim: the `python_version` argument should be a string, not a float: quote it (\"3.10\")"},
		{"float scalar", "- debian_slim: 3.13\n", "line 1: debian_slim: the `python_version` argument should be a string, not a float: quote it (\"3.13\")"},
		{"python_version list", "- debian_slim: {python_version: [a]}\n", "line 1: debian_slim: python_version must be a string"},
		{"non-string env values", "- debian_slim: null\n- env: {A: 1, B: true, C: ok, D: }\n", `line 2: Image ENV variables must be strings. Invalid keys: ["A" "B" "D"] (quote the values)`},
		{"env nested", "- debian_slim: null\n- env: {A: {x: y}}\n", `line 2: Image ENV variables must be strings. Invalid keys: ["A"] (quote the values)`},
		{"env list", "- debian_slim: null\n- env: [A]\n", "line 2: env: want a mapping of variable names to string values"},
		{"build env non-string", "- debian_slim: null\n- run_commands: {commands: [x], env: {N: 1}}\n", `line 2: Image ENV variables must be strings. Invalid keys: ["N"] (quote the values)`},
		{"nested twice", "- debian_slim: null\n- apt_install: [git, [[curl]]]\n", "line 2: apt_install: packages must only contain strings"},
		{"non-string item", "- debian_slim: null\n- apt_install: [git, 1]\n", `line 2: apt_install: packages must only contain strings (quote "1")`},
		{"mapping item", "- debian_slim: null\n- run_commands: [{a: b}]\n", `line 2: run_commands: commands must only contain strings (quote "")`},
		{"packages mapping", "- debian_slim: null\n- pip_install: {packages: {a: b}}\n", "line 2: pip_install: packages must only contain strings"},
		{"bad bool", "- debian_slim: null\n- apt_install: {packages: [git], force_build: maybe}\n", "line 2: apt_install: force_build must be true or false"},
		{"step scalar", "- debian_slim\n", "line 1: step 1: want a one-key mapping `method: arguments`, e.g. `- apt_install: [git]`"},
		{"step two keys", "- debian_slim: null\n  apt_install: [git]\n", "line 1: step 1: want a one-key mapping `method: arguments`, e.g. `- apt_install: [git]`"},
		{"no steps", "[]\n", "line 1: no steps"},
		{"empty", "", "empty recipe: list the steps, starting with a base such as `- debian_slim: {}`"},
		{"scalar root", "hello\n", "line 1: a recipe is a list of steps or a mapping of image names to lists of steps"},
		{"positional-less scalar", "- debian_slim: null\n- add_local_file: foo\n", "line 2: add_local_file: give the arguments by name, e.g. {local_path: ..., remote_path: ..., copy: true}"},
		{"local_path missing", "- debian_slim: null\n- add_local_file: {remote_path: /x, copy: true}\n", "line 2: add_local_file: local_path is required"},
		{"image error series", "- debian_slim: '3.9'\n", "line 1: debian_slim: Unsupported Python version: '3.9'. When using the '2025.06' Image builder, Modal supports the following series: ['3.10', '3.11', '3.12', '3.13', '3.14', '3.14t']."},
		{"image error relative remote", "- debian_slim: null\n- add_local_file: {local_path: f, remote_path: rel, copy: true}\n", "line 2: add_local_file: image.add_local_file() currently only supports absolute remote_path values"},
		{"image error pip option", "- debian_slim: null\n- pip_install: [--pre]\n", "line 2: pip_install: Package list for `Image.pip_install` cannot contain other arguments; try the `extra_options` parameter instead."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := parseErr(t, tc.src)
			if err.Error() != tc.want {
				t.Errorf("error:\n got  %q\n want %q", err, tc.want)
			}
		})
	}
	// Invalid YAML is an error too.
	if _, err := Parse([]byte("- [unclosed\n"), "/r", "d"); err == nil {
		t.Error("invalid YAML: no error")
	}
	// copy defaults to false, as in Modal: a runtime mount, no commands.
	imgs := parse(t, "- debian_slim: null\n- add_local_file: {local_path: /f, remote_path: /x}\n")
	if cmds := imgs[0].Image.Commands(); len(cmds) != 2 || len(cmds[1]) != 0 {
		t.Errorf("copy default: layers %q, want a mount layer without commands", cmds)
	}
}

func TestLoadNameAndErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "my-image.yaml")
	if err := os.WriteFile(p, []byte("- debian_slim: '3.13'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	imgs, err := Load(p, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Name != "my-image" {
		t.Errorf("images = %+v, want one named my-image", imgs)
	}
	imgs, err = Load(p, "given")
	if err != nil || imgs[0].Name != "given" {
		t.Errorf("Load with a name: %+v %v", imgs, err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("- apt_install: [git]\n"), 0o644)
	_, err = Load(bad, "")
	if want := "recipe " + bad + ": line 1: the first step must make a base (debian_slim, micromamba, from_dockerfile, from_registry, from_id or from_scratch), not apt_install"; err == nil || err.Error() != want {
		t.Errorf("Load error %v, want %q", err, want)
	}
	_, err = Load(filepath.Join(dir, "missing.yaml"), "")
	if err == nil || !strings.HasPrefix(err.Error(), "recipe: ") || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing file: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		type unwrapper interface{ Unwrap() error }
		u, ok := err.(unwrapper)
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

// Relative local paths are resolved against the recipe's directory. Where a
// path ends up is only visible when the build reads the file, so this builds
// the layer on a stub base image in a temporary store and reads the
// "does not exist" error, which names the absolute path.
func TestRelativeLocalPaths(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("snapbuild.NewBuilder needs (namespaced) root")
	}
	root := t.TempDir()
	t.Setenv("MODAL_IMAGE_BUILDER_VERSION", "")
	t.Setenv("SNAPBUILD_FORCE_BUILD", "")
	t.Setenv("MODAL_FORCE_BUILD", "")
	b, err := snapbuild.NewBuilder(snapbuild.WithRoot(root), snapbuild.WithProgress(snapbuild.ProgressFunc(func(snapbuild.Event) {})))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// A stub base image: an empty config and manifest, recorded as an image.
	blobs, err := oci.NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	m, err := blobs.WriteImage(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, RootFS: ocispec.RootFS{Type: "layers"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const baseID = "im-0123456789abcdefghijkl"
	rec, _ := json.Marshal(map[string]any{"id": baseID, "manifest": m})
	if err := os.WriteFile(filepath.Join(root, "images", baseID+".json"), rec, 0o644); err != nil {
		t.Fatal(err)
	}

	home := t.TempDir()
	t.Setenv("HOME", home)
	recipeDir := filepath.Join(t.TempDir(), "recipes")
	for _, tc := range []struct {
		name, step, want string
	}{
		{"file relative", "add_local_file: {local_path: data/f.txt, remote_path: /f.txt, copy: true}",
			"add_local_file: local file " + filepath.Join(recipeDir, "data/f.txt") + " does not exist"},
		{"file dot-dot", "add_local_file: {local_path: ../up.txt, remote_path: /f.txt, copy: true}",
			"add_local_file: local file " + filepath.Join(filepath.Dir(recipeDir), "up.txt") + " does not exist"},
		{"file absolute", "add_local_file: {local_path: /nonexistent/abs.txt, remote_path: /f.txt, copy: true}",
			"add_local_file: local file /nonexistent/abs.txt does not exist"},
		{"dir relative", "add_local_dir: {local_path: src, remote_path: /src, copy: true}",
			"add_local_dir: local dir " + filepath.Join(recipeDir, "src") + " does not exist"},
		{"dir home", "add_local_dir: {local_path: ~/proj, remote_path: /src, copy: true}",
			"add_local_dir: local dir " + filepath.Join(home, "proj") + " does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			imgs, err := Parse([]byte("- from_id: "+baseID+"\n- "+tc.step+"\n"), recipeDir, "x")
			if err != nil {
				t.Fatal(err)
			}
			_, err = b.Build(context.Background(), imgs[0].Image)
			if err == nil || err.Error() != tc.want {
				t.Errorf("build error:\n got  %v\n want %q", err, tc.want)
			}
		})
	}
}

// A generated recipe's errors name the image and method, not JSON lines.
func TestParseGeneratedErrors(t *testing.T) {
	_, err := ParseGenerated([]byte(`{"a": [{"debian_slim": {}}, {"apt_install": {"packages": ["x"], "gpu": "Q1"}}]}`), "/w", "app")
	if err == nil || strings.Contains(err.Error(), "line") || !strings.HasPrefix(err.Error(), `image "a": apt_install: unknown GPU type "Q1"`) {
		t.Errorf("error %v", err)
	}
	_, err = ParseGenerated([]byte(`{"a": [{"debian_slim": {}}, {"run_commands": {"commands": ["x"], "secrets": [{"from_vault": "v"}]}}]}`), "/w", "app")
	if err == nil || strings.Contains(err.Error(), "line") {
		t.Errorf("error %v", err)
	}
}
