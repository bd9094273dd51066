package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// writeFiles writes files (path relative to dir -> content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// storeTree lists every path in a store with its size and mtime: a dry
// run must leave it as it was (no step record, snapshot, blob or name).
func storeTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Name() == "lock" {
			return nil
		}
		out = append(out, p+" "+fi.ModTime().String()+" "+fi.Mode().String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestModalFileNames builds Modal files as users write them: one
// module-level image used by the App and its functions builds with -t;
// images are named PROJECT:NAME, so two projects that both call their image
// `image` keep their own; a name another file gave is never moved silently;
// -m imports a package module with relative imports; --print shows the plan
// and starts nothing.
func TestModalFileNames(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap", "python3")
	requireMirror(t)
	base := t.TempDir()
	project := func(dir, app, content string) string {
		appArg := ""
		if app != "" {
			appArg = `"` + app + `", `
		}
		src := `import modal

image = modal.Image.debian_slim().run_commands("echo ` + content + ` > /which")
app = modal.App(` + appArg + `image=image)


@app.function()
def serve():
    pass


@app.function(image=image)
def work():
    pass
`
		writeFiles(t, filepath.Join(base, dir), map[string]string{"app.py": src})
		return filepath.Join(base, dir, "app.py")
	}
	r := runner{t: t, root: rootDir}
	which := func(name string) string {
		t.Helper()
		return strings.TrimSpace(r.ok("run", name, "cat", "/which").stdout)
	}

	// One image, three names of it (image, serve, work): -t names it.
	one := project("one", "naming-one", "one")
	res := r.ok("build", one, "-t", "naming-mine", "--progress", "plain")
	if !strings.HasPrefix(res.stdout, "naming-mine im-") || strings.Count(res.stdout, "\n") != 1 {
		t.Errorf("build app.py -t naming-mine printed:\n%s", res.stdout)
	}
	if got := which("naming-mine"); got != "one" {
		t.Errorf("naming-mine: /which = %q", got)
	}

	// Without -t: PROJECT:NAME for every name, one image.
	res = r.ok("build", one, "--progress", "plain")
	ids := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
		f := strings.Fields(line)
		ids[f[0]] = f[1]
	}
	want := []string{"naming-one:image", "naming-one:serve", "naming-one:work"}
	var got []string
	for n := range ids {
		got = append(got, n)
	}
	sort.Strings(got)
	if !reflect.DeepEqual(got, want) || ids[want[0]] != ids[want[1]] || ids[want[0]] != ids[want[2]] {
		t.Errorf("names: %v (stdout:\n%s)", ids, res.stdout)
	}

	// A name that is no image reference is refused before anything runs.
	res = r.run("", "build", one, "-t", "Naming-Upper")
	if res.code == 0 || !strings.Contains(res.stderr, `image name "Naming-Upper"`) {
		t.Errorf("-t Naming-Upper: exit %d\n%s", res.code, res.stderr)
	}

	// Two different images and -t: an error that lists them.
	two := filepath.Join(base, "two", "app.py")
	writeFiles(t, filepath.Join(base, "two"), map[string]string{"app.py": `import modal
a = modal.Image.debian_slim().run_commands("echo a > /which")
b = a.run_commands("echo b > /which")
`})
	res = r.run("", "build", two, "-t", "x")
	if res.code == 0 || !strings.Contains(res.stderr, "2 different images") || !strings.Contains(res.stderr, "app.py::a") || !strings.Contains(res.stderr, "app.py::b") {
		t.Errorf("-t with two images: exit %d\n%s", res.code, res.stderr)
	}

	// Two projects, each with an image called `image`: both keep theirs.
	r.ok("build", project("proj-a", "naming-a", "aaa"), "--progress", "plain")
	r.ok("build", project("proj-b", "naming-b", "bbb"), "--progress", "plain")
	if a, b := which("naming-a:image"), which("naming-b:image"); a != "aaa" || b != "bbb" {
		t.Errorf("naming-a:image has %q, naming-b:image has %q", a, b)
	}

	// Unnamed Apps in files of the same stem give the same name: the second
	// build is refused, names the first file, and moves nothing...
	c := project("proj-c", "", "ccc")
	d := project("proj-d", "", "ddd")
	r.ok("build", c, "--progress", "plain")
	res = r.run("", "build", d, "--progress", "plain")
	if res.code == 0 || !strings.Contains(res.stderr, `"app:image" already names`) || !strings.Contains(res.stderr, c) || !strings.Contains(res.stderr, "--replace") {
		t.Errorf("a name of another file: exit %d\n%s", res.code, tail(res.stderr, 5))
	}
	if !strings.Contains(res.stderr, "nothing was built") || strings.Contains(res.stdout, " im-") {
		t.Errorf("a refused build built or named something:\n%s\n%s", res.stdout, tail(res.stderr, 5))
	}
	for _, n := range []string{"app:image", "app:serve", "app:work"} {
		if got := which(n); got != "ccc" {
			t.Errorf("%s moved to %q", n, got)
		}
	}
	// --print says so, and still prints the plan.
	res = r.ok("build", "--print", d)
	if !strings.Contains(res.stderr, "a build would stop here") || !strings.Contains(res.stdout, "[2] run_commands") {
		t.Errorf("--print of a refused build:\n%s\n%s", res.stdout, res.stderr)
	}
	// ...unless asked, and then it says so.
	res = r.ok("build", d, "--replace", "--progress", "plain")
	if !strings.Contains(res.stderr, "app:image: moved from im-") || which("app:image") != "ddd" {
		t.Errorf("--replace: %s", tail(res.stderr, 5))
	}

	// -m: a package module with relative imports, run from the directory
	// that holds the package (as `modal run -m`).
	modDir := filepath.Join(base, "mod")
	writeFiles(t, modDir, map[string]string{
		"pkg/__init__.py": "",
		"pkg/common.py":   "CONTENT = 'from-module'\n",
		"pkg/images.py": `import modal
from .common import CONTENT
from . import common

assert common.CONTENT == CONTENT and __name__ == "pkg.images", __name__
image = modal.Image.debian_slim().run_commands("echo " + CONTENT + " > /which")
`,
	})
	rm := runner{t: t, root: rootDir, dir: modDir}
	res = rm.ok("build", "-m", "pkg.images", "--progress", "plain")
	if !strings.HasPrefix(res.stdout, "pkg.images:image im-") {
		t.Errorf("-m pkg.images printed:\n%s", res.stdout)
	}
	if got := which("pkg.images:image"); got != "from-module" {
		t.Errorf("pkg.images:image: /which = %q", got)
	}

	// --print: the plan of a .py and of a recipe, and nothing started.
	e := project("proj-e", "naming-e", "eee")
	before := storeTree(t, rootDir)
	res = r.ok("build", "--print", e)
	if after := storeTree(t, rootDir); !reflect.DeepEqual(before, after) {
		t.Errorf("--print changed the store")
	}
	for _, s := range []string{"naming-e:image, naming-e:serve, naming-e:work", "[1] debian_slim", "FROM python:3.11-slim-bookworm", "cached", "[2] run_commands", "RUN echo eee > /which", "run ", "1 to run"} {
		if !strings.Contains(res.stdout, s) {
			t.Errorf("--print output lacks %q:\n%s", s, res.stdout)
		}
	}
	recipe := writeRecipe(t, base, "naming-plan.yaml", "- debian_slim: {}\n- run_commands: [\"echo plan > /which\", \"true\"]\n- env: {A: b}\n")
	type step struct {
		Instruction, State, Key string
	}
	type plan []struct {
		Names []string `json:"names"`
		Plan  struct {
			Layers []struct {
				Method   string   `json:"method"`
				Commands []string `json:"commands"`
				Steps    []step   `json:"steps"`
			} `json:"layers"`
		} `json:"plan"`
	}
	var p plan
	res = r.ok("build", "--print=json", recipe)
	if err := json.Unmarshal([]byte(res.stdout), &p); err != nil {
		t.Fatalf("--print=json: %v\n%s", err, res.stdout)
	}
	if len(p) != 1 || len(p[0].Plan.Layers) != 3 {
		t.Fatalf("--print=json: %s", res.stdout)
	}
	l := p[0].Plan.Layers[1]
	if l.Method != "run_commands" || len(l.Steps) != 2 || l.Steps[0].State != "run" || len(l.Steps[0].Key) != 64 || l.Steps[1].State != "pending" {
		t.Errorf("--print=json run_commands layer: %+v", l)
	}
	if after := storeTree(t, rootDir); !reflect.DeepEqual(before, after) {
		t.Errorf("--print=json changed the store")
	}
	// After the build, the same plan is all cached, with the key the dry
	// run gave for the first step.
	r.ok("build", recipe, "--progress", "plain")
	res = r.ok("build", "--print=json", recipe)
	var p2 plan
	if err := json.Unmarshal([]byte(res.stdout), &p2); err != nil {
		t.Fatal(err)
	}
	for _, l := range p2[0].Plan.Layers {
		for _, s := range l.Steps {
			if s.State != "cached" && s.State != "config" {
				t.Errorf("after the build, %q is %s", s.Instruction, s.State)
			}
		}
	}
	if k := p2[0].Plan.Layers[1].Steps[0].Key; k != l.Steps[0].Key {
		t.Errorf("the dry run's key %s is not the build's %s", l.Steps[0].Key, k)
	}
}
