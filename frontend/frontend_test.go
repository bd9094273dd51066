package frontend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/snapbuild/snapbuild/frontend"
	"github.com/snapbuild/snapbuild/recipe"
)

// needPython returns python3, skipping the test where there is none, except
// on CI (CI=true), where the front end must be tested.
func needPython(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3 is needed to test the Python front end: %v", err)
		}
		t.Skipf("python3 not found: %v", err)
	}
	return py
}

const appSource = `import os
import modal

app = modal.App("demo")

base = modal.Image.debian_slim(python_version="3.11").apt_install("git")

web_image = (
    base.pip_install("flask", index_url=os.environ.get("INDEX", "http://127.0.0.1:9/simple"))
    .env({"GREETING": "hello"})
    .workdir("/app")
    .add_local_dir("assets", remote_path="/assets", ignore=lambda p: p.suffix == ".tmp")
    .add_local_python_source("mylib", copy=True)
    .run_commands("echo hi", secrets=[modal.Secret.from_dict({"TOKEN": "t"})], force_build=True)
)

@app.function(image=web_image)
def serve():
    return "ok"

if __name__ == "__main__":
    raise SystemExit("main ran")
`

// writeApp makes a small Modal app in a temporary directory, which becomes
// the working directory.
func writeApp(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"app.py":            appSource,
		"assets/a.txt":      "a",
		"assets/b.tmp":      "b",
		"mylib/__init__.py": "",
	} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	return dir
}

func TestLoad(t *testing.T) {
	needPython(t)
	dir := writeApp(t)
	data, err := frontend.Load(context.Background(), "app.py", "")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string][]map[string]map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	var names []string
	for n := range doc {
		names = append(names, n)
	}
	sort.Strings(names)
	if want := []string{"base", "serve", "web_image"}; !reflect.DeepEqual(names, want) {
		t.Errorf("images %q, want %q", names, want)
	}
	steps := doc["web_image"]
	if len(steps) != 8 {
		t.Fatalf("web_image has %d steps:\n%s", len(steps), data)
	}
	if got := steps[5]["add_local_dir"]["ignore"]; !reflect.DeepEqual(got, []any{"b.tmp"}) {
		t.Errorf("callable ignore = %v, want [b.tmp]", got)
	}
	if got := steps[6]["add_local_dir"]["local_path"]; got != filepath.Join(dir, "mylib") {
		t.Errorf("add_local_python_source: local_path %v", got)
	}

	// The recipe reader takes it, with the working directory as the recipe's.
	imgs, err := recipe.Parse(data, dir, "app")
	if err != nil {
		t.Fatalf("recipe.Parse: %v\n%s", err, data)
	}
	var parsed []string
	for _, img := range imgs {
		parsed = append(parsed, img.Name)
		if err := img.Image.Err(); err != nil {
			t.Errorf("%s: %v", img.Name, err)
		}
	}
	if want := []string{"base", "web_image", "serve"}; !reflect.DeepEqual(parsed, want) {
		t.Errorf("parsed images %q, want %q (definition order)", parsed, want)
	}

	// A selector keeps one image.
	data, err = frontend.Load(context.Background(), "app.py", "serve")
	if err != nil {
		t.Fatal(err)
	}
	imgs, err = recipe.Parse(data, dir, "app")
	if err != nil || len(imgs) != 1 || imgs[0].Name != "serve" {
		t.Errorf("selected: %v %v", imgs, err)
	}
}

func TestLoadErrors(t *testing.T) {
	needPython(t)
	dir := writeApp(t)
	ctx := context.Background()

	_, err := frontend.Load(ctx, "app.py", "nope")
	var e *frontend.Error
	if !errors.As(err, &e) || !strings.Contains(err.Error(), "has no image named 'nope'; its images: base, web_image, serve") {
		t.Errorf("unknown selector: %v", err)
	}

	os.WriteFile(filepath.Join(dir, "bad.py"), []byte("import modal\n\ndef f():\n    raise KeyError('missing setting')\n\nf()\n"), 0o644)
	_, err = frontend.Load(ctx, "bad.py", "")
	if !errors.As(err, &e) || !strings.Contains(e.Output, "Traceback (most recent call last)") ||
		!strings.Contains(e.Output, `bad.py", line 4, in f`) || !strings.Contains(err.Error(), "KeyError: 'missing setting'") {
		t.Errorf("raising file: %v", err)
	}

	if _, err := frontend.Load(ctx, "missing.py", ""); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := frontend.LoadWith(ctx, "app.py", frontend.Options{Python: filepath.Join(dir, "no-python")}); err == nil {
		t.Errorf("no interpreter: no error")
	}
	t.Setenv("PATH", dir)
	if _, err := frontend.Load(ctx, "app.py", ""); !errors.Is(err, exec.ErrNotFound) || !strings.Contains(err.Error(), "needs python3 on PATH") {
		t.Errorf("no python3: %v", err)
	}
}

func TestLoadOutput(t *testing.T) {
	needPython(t)
	dir := writeApp(t)
	os.WriteFile(filepath.Join(dir, "chatty.py"), []byte("import modal\nprint('hello from the file')\nimage = modal.Image.debian_slim()\n"), 0o644)
	var out strings.Builder
	data, err := frontend.LoadWith(context.Background(), "chatty.py", frontend.Options{Output: &out})
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != "hello from the file\n" {
		t.Errorf("output %q", out.String())
	}
	if !json.Valid(data) {
		t.Errorf("not JSON: %s", data)
	}
}

// TestLoadRunFunction checks that run_function steps, with their
// definition, globals, input, secrets and volumes, are read by the recipe
// reader.
func TestLoadRunFunction(t *testing.T) {
	needPython(t)
	dir := t.TempDir()
	t.Chdir(dir)
	os.WriteFile(filepath.Join(dir, "build.py"), []byte(`import os
import modal

MODEL = "tiny"
vol = modal.Volume.from_name("cache", create_if_missing=True)

def download(name, size=1):
    open("/model", "w").write(name * size + MODEL)

image = modal.Image.debian_slim().run_function(
    download, args=("x",), kwargs={"size": 2},
    secrets=[modal.Secret.from_dict({"TOKEN": "t"})], env={"MODE": "fast"},
    volumes={"/cache": vol, "/host": "hostdir"}, timeout=60, force_build=True,
)
`), 0o644)
	data, err := frontend.Load(context.Background(), "build.py", "")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string][]map[string]map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	rf := doc["image"][1]["run_function"]
	for k, want := range map[string]any{"module": "build", "function": "download", "source": filepath.Join(dir, "build.py"), "timeout": 60.0} {
		if rf[k] != want {
			t.Errorf("%s = %v, want %v", k, rf[k], want)
		}
	}
	for _, k := range []string{"definition", "globals", "input"} {
		if s, _ := rf[k].(string); s == "" {
			t.Errorf("no %s: %v", k, rf)
		}
	}
	imgs, err := recipe.Parse(data, dir, "build")
	if err != nil {
		t.Fatalf("recipe.Parse: %v\n%s", err, data)
	}
	if len(imgs) != 1 || imgs[0].Image.Err() != nil {
		t.Errorf("parsed: %v", imgs)
	}
}

// writeFiles writes files (path: content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEvaluateModule imports a module of a package that uses relative
// imports, as `modal run -m pkg.app` does.
func TestEvaluateModule(t *testing.T) {
	needPython(t)
	dir := t.TempDir()
	t.Chdir(dir)
	writeFiles(t, dir, map[string]string{
		"pkg/__init__.py":     "",
		"pkg/common.py":       "import modal\nbase = modal.Image.debian_slim().apt_install('git')\n",
		"pkg/sub/__init__.py": "",
		"pkg/sub/deps.py":     "PACKAGES = ['flask']\n",
		"pkg/app.py": `import modal
from . import common
from .sub.deps import PACKAGES

assert __name__ == "pkg.app", __name__
app = modal.App("example-hello")
image = common.base.pip_install(*PACKAGES)

@app.function(image=image)
def hello():
    pass

if __name__ == "__main__":
    raise SystemExit("main ran")
`,
	})
	ctx := context.Background()
	res, err := frontend.Evaluate(ctx, "", frontend.Options{Module: "pkg.app", Meta: true})
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := recipe.Parse(res.Recipe, dir, "pkg.app")
	if err != nil {
		t.Fatalf("recipe.Parse: %v\n%s", err, res.Recipe)
	}
	var names []string
	for _, img := range imgs {
		names = append(names, img.Name)
	}
	if want := []string{"image", "hello"}; !reflect.DeepEqual(names, want) {
		t.Errorf("images %q, want %q", names, want)
	}
	want := frontend.Meta{Source: "pkg.app", Stem: "pkg.app", Images: []frontend.ImageMeta{
		{Name: "image", App: "example-hello", Kind: frontend.KindImage},
		{Name: "hello", App: "example-hello", Kind: frontend.KindFunction, SameAs: "image"},
	}}
	if !reflect.DeepEqual(res.Meta, want) {
		t.Errorf("meta = %+v, want %+v", res.Meta, want)
	}

	// A selector after "::"; LoadWith takes Module too.
	data, err := frontend.LoadWith(ctx, "ignored.py", frontend.Options{Module: "pkg.app::hello"})
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil || len(doc) != 1 || doc["hello"] == nil {
		t.Errorf("selected: %s %v", data, err)
	}

	// Not found: one line that says where to run from.
	t.Chdir(filepath.Join(dir, "pkg"))
	_, err = frontend.Evaluate(ctx, "", frontend.Options{Module: "pkg.app"})
	var e *frontend.Error
	if !errors.As(err, &e) || e.File != "-m pkg.app" || strings.Contains(err.Error(), "\n") ||
		!strings.Contains(err.Error(), "-m pkg.app: no module named 'pkg' in the working directory ("+filepath.Join(dir, "pkg")+")") ||
		!strings.Contains(err.Error(), "run from the directory that holds pkg/") {
		t.Errorf("module not found: %v", err)
	}
}

// TestEvaluateMeta checks the App of each image, and same_as.
func TestEvaluateMeta(t *testing.T) {
	needPython(t)
	dir := t.TempDir()
	t.Chdir(dir)
	writeFiles(t, dir, map[string]string{"shop.py": `import modal

app = modal.App("shop")
other = modal.App()

base = modal.Image.debian_slim().apt_install("git")
twin = modal.Image.debian_slim().apt_install("git")
web_image = base.pip_install("flask")

@app.function(image=web_image)
def web():
    pass

@other.function(image=base)
def job():
    pass

@app.cls()
class Model:
    pass
`})
	res, err := frontend.Evaluate(context.Background(), "shop.py", frontend.Options{Meta: true})
	if err != nil {
		t.Fatal(err)
	}
	want := frontend.Meta{Source: filepath.Join(dir, "shop.py"), Stem: "shop", Images: []frontend.ImageMeta{
		// base's first user is job, of an unnamed App: the only named App.
		{Name: "base", App: "shop", Kind: frontend.KindImage},
		{Name: "twin", App: "shop", Kind: frontend.KindImage, SameAs: "base"},
		{Name: "web_image", App: "shop", Kind: frontend.KindImage},
		{Name: "web", App: "shop", Kind: frontend.KindFunction, SameAs: "web_image"},
		{Name: "job", Kind: frontend.KindFunction, SameAs: "base"},
		{Name: "Model", App: "shop", Kind: frontend.KindClass},
	}}
	if !reflect.DeepEqual(res.Meta, want) {
		t.Errorf("meta =\n%+v\nwant\n%+v", res.Meta, want)
	}
	// The recipe is Load's.
	data, err := frontend.Load(context.Background(), "shop.py", "")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, res.Recipe) {
		t.Errorf("Evaluate's recipe differs from Load's:\n%s\n%s", res.Recipe, data)
	}
	// Without Options.Meta, no meta.
	res, err = frontend.Evaluate(context.Background(), "shop.py", frontend.Options{})
	if err != nil || res.Meta.Source != "" || res.Meta.Images != nil {
		t.Errorf("meta without Options.Meta: %+v %v", res.Meta, err)
	}
}

// TestEvaluateServerCall checks that what needs Modal's servers, called
// while the file is read, is one line naming the call and the file's line.
func TestEvaluateServerCall(t *testing.T) {
	needPython(t)
	dir := t.TempDir()
	t.Chdir(dir)
	writeFiles(t, dir, map[string]string{"sandbox.py": `import modal

app = modal.App("sandboxes")
image = modal.Image.debian_slim()

sb = modal.Sandbox.create("sleep", "10", app=app, image=image)
`})
	_, err := frontend.Evaluate(context.Background(), "sandbox.py", frontend.Options{})
	var e *frontend.Error
	want := "sandbox.py:6: modal.Sandbox.create() cannot run while snapbuild reads the file (it needs Modal's servers); " +
		"move it under a function or `if __name__ == \"__main__\":`"
	if !errors.As(err, &e) || err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}
