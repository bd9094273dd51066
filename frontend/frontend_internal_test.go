package frontend

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
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

// TestPython runs the unit tests of the Python side (python/tests).
func TestPython(t *testing.T) {
	py := needPython(t)
	cmd := exec.Command(py, "-m", "unittest", "discover", "-s", "tests", "-t", ".")
	cmd.Dir = "python"
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python unittest: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func TestWriteRuntime(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rt")
	if err := WriteRuntime(dir); err != nil {
		t.Fatal(err)
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, rel)
			if fi, _ := d.Info(); fi.Mode().Perm() != 0o644 {
				t.Errorf("%s: mode %v", rel, fi.Mode())
			}
		}
		return nil
	})
	for _, want := range []string{RunnerScript, "modal/__init__.py", "modal/_image.py", "modal/file_pattern_matcher.py"} {
		if !contains(files, want) {
			t.Errorf("runtime lacks %s: %q", want, files)
		}
	}
	for _, f := range files {
		if f == bootstrapScript || strings.HasPrefix(f, "tests") {
			t.Errorf("runtime holds %s", f)
		}
	}
	if got := RunnerCommand("python"); !reflect.DeepEqual(got, []string{"python", "/.snapbuild/python/snapbuild_run_function.py", "/.snapbuild/request.json"}) {
		t.Errorf("RunnerCommand = %q", got)
	}

	// The runtime runs a function as the build container would.
	py := needPython(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "job.py"), []byte("import modal, sys\n\ndef run(path, text='x'):\n    open(path, 'w').write(text + str(modal.is_local()))\n"), 0o644)
	target := filepath.Join(t.TempDir(), "out")
	req, _ := json.Marshal(Request{Module: "job", Function: "run", Args: []any{target}, Kwargs: map[string]any{"text": "done-"}})
	reqFile := filepath.Join(t.TempDir(), "request.json")
	os.WriteFile(reqFile, req, 0o644)
	cmd := exec.Command(py, filepath.Join(dir, RunnerScript), reqFile)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+src, "PYTHONDONTWRITEBYTECODE=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("runner: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(target); string(b) != "done-False" {
		t.Errorf("function wrote %q", b)
	}
}

// TestEmbedded checks that every Python file of the shim is embedded (the
// go:embed patterns list directories one by one).
func TestEmbedded(t *testing.T) {
	var onDisk, embedded []string
	filepath.WalkDir("python", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".py") && !strings.HasPrefix(p, filepath.Join("python", "tests")) {
			onDisk = append(onDisk, filepath.ToSlash(p))
		}
		return nil
	})
	fs.WalkDir(python, "python", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			embedded = append(embedded, p)
		}
		return nil
	})
	sort.Strings(onDisk)
	sort.Strings(embedded)
	if !reflect.DeepEqual(onDisk, embedded) {
		t.Errorf("embedded %q\non disk %q", embedded, onDisk)
	}
}

func TestSplitRef(t *testing.T) {
	for _, c := range []struct{ ref, file, sel string }{
		{"app.py", "app.py", ""},
		{"app.py::web", "app.py", "web"},
		{"dir/app.py::App.f", "dir/app.py", "App.f"},
	} {
		if f, s := SplitRef(c.ref); f != c.file || s != c.sel {
			t.Errorf("SplitRef(%q) = %q, %q", c.ref, f, s)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
