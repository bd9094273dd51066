package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// functionSource is the module of the run_function tests: what a user's
// build script looks like.
const functionSource = `import json, os, sys

import modal  # snapbuild's own, inside the build container

app = modal.App("fn-test")

def write_model(name, size=3):
    os.makedirs("/models", exist_ok=True)
    token = os.environ["HF_TOKEN"]
    with open(f"/models/{name}.bin", "w") as f:
        f.write(f"{name}:{size}:{len(token)}")
    with open("/vol/log.txt", "a") as f:
        f.write(f"wrote {name}\n")
    print("model written:", name, "python", sys.version_info[:2])

@app.function()
def decorated():
    with open("/decorated", "w") as f:
        f.write(__name__)

def fail():
    raise ValueError("no such model: bogus")

def slow():
    open("/started", "w").close()
    import time
    time.sleep(300)
`

// TestRunFunction runs Python functions in the build sandbox from a
// recipe: the module's source is mounted at /root/<file>.py, args, kwargs and
// a secret reach the call, a volume is written on the host, and the layer
// holds exactly what the function wrote in the image. An exception fails the
// build with its traceback, and a timeout kills the function and leaves the
// store clean.
func TestRunFunction(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "build.py"), []byte(functionSource), 0o644)
	vol := filepath.Join(dir, "voldir")
	os.MkdirAll(vol, 0o755)
	recipe := writeRecipe(t, dir, "fn.yaml", `
- debian_slim: {}
- run_function:
    source: build.py
    function: write_model
    args: [tiny]
    kwargs: {size: 7}
    secrets: [{from_dict: {HF_TOKEN: hf-secret-123}}]
    volumes: {/vol: voldir}
- run_commands: {commands: ["echo run_commands >> /vol/log.txt"], volumes: {/vol: voldir}}
- run_function: {source: build.py, function: decorated}
`)
	r := runner{t: t, root: rootDir}
	res := r.run("", "build", recipe, "--progress", "plain")
	if res.code != 0 {
		t.Fatalf("build: exit %d\n%s", res.code, tail(res.stderr, 30))
	}
	if !strings.Contains(res.stderr, "model written: tiny python (3, 11)") || !strings.Contains(res.stderr, "RUN_FUNCTION build.write_model") {
		t.Errorf("build output lacks the function's output:\n%s", tail(res.stderr, 20))
	}
	if strings.Contains(res.stderr, "hf-secret-123") {
		t.Errorf("the secret is in the output")
	}
	out := r.ok("run", "fn", "sh", "-c", "cat /models/tiny.bin; echo; cat /decorated; echo; ls -a /root; test -e /vol || echo no-vol; test -e /.snapbuild || echo no-runtime")
	if want := "tiny:7:13\nbuild\n.\n..\n.bashrc\n.profile\nno-vol\nno-runtime\n"; out.stdout != want {
		t.Errorf("image content:\n%s\nwant:\n%s", out.stdout, want)
	}
	if b, _ := os.ReadFile(filepath.Join(vol, "log.txt")); string(b) != "wrote tiny\nrun_commands\n" {
		t.Errorf("volume log.txt = %q", b)
	}
	layout := filepath.Join(t.TempDir(), "layout")
	r.ok("export", "fn", "oci:"+layout+":fn")
	created, entries := layerEntries(t, layout)
	var last2 []string
	for _, i := range []int{len(entries) - 2, len(entries) - 1} {
		var names []string
		for _, h := range entries[i] {
			names = append(names, h.Name)
		}
		sort.Strings(names)
		last2 = append(last2, created[i]+": "+strings.Join(names, " "))
	}
	want := []string{"RUN_FUNCTION build.write_model: models/ models/tiny.bin", "RUN_FUNCTION build.decorated: decorated"}
	if strings.Join(last2, "\n") != strings.Join(want, "\n") {
		t.Errorf("function layers:\n%s\nwant:\n%s", strings.Join(last2, "\n"), strings.Join(want, "\n"))
	}

	// Cached: same definition, same args.
	first := inspect(t, r, "fn")
	if s := r.build(recipe); s.Stats.ContainersStarted != 0 || s.ID != first.ID {
		t.Errorf("rebuild: %d containers started, ID %s (was %s)", s.Stats.ContainersStarted, s.ID, first.ID)
	}
	// Another argument is another layer.
	other := writeRecipe(t, dir, "fn2.yaml", strings.Replace(mustRead(t, recipe), "size: 7", "size: 8", 1))
	r.build(other)
	if out := r.ok("run", "fn2", "cat", "/models/tiny.bin"); out.stdout != "tiny:8:13" {
		t.Errorf("fn2: %q", out.stdout)
	}

	// An exception: the build fails with the traceback.
	failing := writeRecipe(t, dir, "fnfail.yaml", "- debian_slim: {}\n- run_function: {source: build.py, function: fail}\n")
	res = r.run("", "build", failing, "--progress", "plain")
	if res.code == 0 || !strings.Contains(res.stderr, "Traceback (most recent call last)") ||
		!strings.Contains(res.stderr, `File "/root/build.py", line 22, in fail`) || !strings.Contains(res.stderr, "ValueError: no such model: bogus") {
		t.Errorf("failing function: exit %d\n%s", res.code, tail(res.stderr, 20))
	}
	// A timeout kills the function; the store stays clean.
	slow := writeRecipe(t, dir, "fnslow.yaml", "- debian_slim: {}\n- run_function: {source: build.py, function: slow, timeout: 3}\n")
	res = r.run("", "build", slow, "--progress", "plain")
	if res.code == 0 || !strings.Contains(res.stderr, "timed out after 3s") {
		t.Errorf("slow function: exit %d\n%s", res.code, tail(res.stderr, 10))
	}
	if left := leftovers(t, rootDir); len(left) > 0 {
		t.Errorf("after the timeout the store holds: %q", left)
	}
	if m := storeMounts(t, rootDir); len(m) > 0 {
		t.Errorf("after the timeout, mounts are left: %q", m)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestExamples builds the Python examples with `snapbuild build FILE.py`,
// as a user would, and runs what they built.
func TestExamples(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap", "python3")
	requireMirror(t)
	whl := t.TempDir()
	app := wheel(t, whl, "snapapp", "2.0", "app-ok")
	index := packageIndex(t, map[string][]string{"snapapp": {filepath.Join(whl, app)}})
	r := runner{t: t, root: rootDir, env: []string{"SNAPBUILD_EXAMPLE_INDEX=" + index, "SNAPBUILD_EXAMPLE_TOKEN=tok-12345"}}
	examples, err := filepath.Abs("../examples")
	if err != nil {
		t.Fatal(err)
	}
	// snapbuild build examples/*.py: every image of every file.
	files, err := filepath.Glob(filepath.Join(examples, "*.py"))
	if err != nil || len(files) != 3 {
		t.Fatalf("examples/*.py: %q %v", files, err)
	}
	res := r.run("", append([]string{"build", "--progress", "plain"}, files...)...)
	if res.code != 0 {
		t.Fatalf("build examples/*.py: exit %d\n%s", res.code, tail(res.stderr, 30))
	}
	// Names are PROJECT:NAME, the project being the file's modal.App name.
	for _, n := range []string{"example-web-app:web_image", "example-web-app:serve", "example-model-download:model_image",
		"example-model-download:predict", "example-local-source:source_image", "example-local-source:shout"} {
		if !strings.Contains(res.stdout, n+" im-") {
			t.Errorf("build examples/*.py did not name image %s:\n%s", n, res.stdout)
		}
	}
	out := r.ok("run", "example-web-app:serve", "sh", "-c", `pwd; echo "$GREETING"; command -v curl; python -c 'import snapapp; print(snapapp.VALUE)'`)
	if out.stdout != "/app\nhello\n/usr/bin/curl\napp-ok\n" {
		t.Errorf("web_app image: %q", out.stdout)
	}

	out = r.ok("run", "example-model-download:model_image", "sh", "-c", "cat /models/tiny-model.bin /models/tiny-model.json; echo; echo $MODEL_DIR; test -e /cache || echo no-cache")
	if want := "weights of tiny-model at v1\n{\"name\": \"tiny-model\", \"revision\": \"v1\", \"token_length\": 9}\n/models\nno-cache\n"; out.stdout != want {
		t.Errorf("model_download image:\n%s\nwant:\n%s", out.stdout, want)
	}
	log, err := os.ReadFile(filepath.Join(rootDir, "volumes", "example-model-cache", "downloads.log"))
	if err != nil || !strings.Contains(string(log), "tiny-model v1\n") {
		t.Errorf("the cache volume's log: %q, %v", log, err)
	}

	// One image by name: app.py::NAME.
	res = r.run("", "build", filepath.Join(examples, "local_source.py")+"::source_image", "--progress", "plain")
	if res.code != 0 || !strings.Contains(res.stdout, "example-local-source:source_image im-") || strings.Contains(res.stdout, "shout im-") {
		t.Fatalf("build local_source.py::source_image: exit %d\n%s\n%s", res.code, res.stdout, tail(res.stderr, 20))
	}
	out = r.ok("run", "example-local-source:source_image", "sh", "-c", "cat /root/built; find /root/mylib -name '*.py' | sort; test -e /root/mylib/notes.txt || echo no-notes")
	if out.stdout != "BUILT!\n/root/mylib/__init__.py\n/root/mylib/text.py\nno-notes\n" {
		t.Errorf("local_source image: %q", out.stdout)
	}
	res = r.run("", "build", filepath.Join(examples, "local_source.py")+"::nope")
	if res.code == 0 || !strings.Contains(res.stderr, "source_image") {
		t.Errorf("an unknown image name: exit %d\n%s", res.code, tail(res.stderr, 5))
	}
}

// TestRunFunctionPickled runs a function that exists only as a cloudpickle
// payload (as one defined in a notebook travels): with cloudpickle in the
// image it runs, without it the build fails saying what is missing.
func TestRunFunctionPickled(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	py := "/usr/bin/python3" // Debian's, which python3-cloudpickle serves
	probe := exec.Command(py, "-c", "import cloudpickle")
	require(t, probe.Run() == nil, "%s cannot import cloudpickle: apt-get install python3-cloudpickle", py)
	out, err := exec.Command(py, "-c", `
import base64, cloudpickle
factor = 6
def times(x):
    with open("/pickled.txt", "w") as f:
        f.write(str(x * factor))
print(base64.b64encode(cloudpickle.dumps(times)).decode())
`).Output()
	if err != nil {
		t.Fatalf("pickling: %v", err)
	}
	payload := strings.TrimSpace(string(out))
	dir := t.TempDir()
	r := runner{t: t, root: rootDir}
	ok := writeRecipe(t, dir, "pickled.yaml", `
- debian_slim: {}
- apt_install: [python3-cloudpickle]
- run_function: {pickled: `+payload+`, args: [7]}
`)
	r.build(ok)
	if got := r.ok("run", "pickled", "cat", "/pickled.txt").stdout; got != "42" {
		t.Errorf("/pickled.txt = %q, want 42", got)
	}
	missing := writeRecipe(t, dir, "nocloudpickle.yaml", "- debian_slim: {}\n- run_function: {pickled: "+payload+", args: [7]}\n")
	res := r.run("", "build", missing, "--progress", "plain")
	if res.code == 0 || !strings.Contains(res.stderr, "cloudpickle, which this image lacks") {
		t.Errorf("without cloudpickle in the image: exit %d\n%s", res.code, tail(res.stderr, 10))
	}
}
