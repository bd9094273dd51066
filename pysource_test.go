package snapbuild

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
)

func TestAddLocalPythonSource(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not on PATH")
	}
	dir := t.TempDir()
	for _, p := range []string{"mypkg/__init__.py", "mypkg/sub/x.py", "mypkg/data.json", "mypkg/.hidden/h.py", "mypkg/__pycache__/a.cpython-311.pyc", "single.py"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), []byte("x = 1\n"), 0o644)
	}
	t.Chdir(dir)
	img := uBase(t).AddLocalPythonSource([]string{"mypkg", "single"}, true, nil)
	if err := img.Err(); err != nil {
		t.Fatal(err)
	}
	l := img.layers[len(img.layers)-1]
	files, err := resolveContext(l)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.path)
	}
	// Only .py files; the dot-directory is kept, as Modal keeps it with an
	// explicit (default) ignore.
	want := []string{"root/mypkg/.hidden/h.py", "root/mypkg/__init__.py", "root/mypkg/sub/x.py", "root/single.py"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("files = %q, want %q", got, want)
	}
	all := uBase(t).AddLocalPythonSource([]string{"mypkg"}, false, NewFilePatternMatcher("data.json"))
	if all.Err() != nil || !all.layers[len(all.layers)-1].Mount {
		t.Fatalf("copy=false: %v", all.Err())
	}
	files, _ = resolveContext(all.layers[len(all.layers)-1])
	if len(files) != 4 {
		t.Errorf("explicit ignore: %d files, want 4 (all of mypkg but data.json, .pyc included)", len(files))
	}
	uWantErr(t, uBase(t).AddLocalPythonSource([]string{"no_such_module_xyz"}, true, nil), "add_local_python_source",
		"add_local_python_source: Module no_such_module_xyz has no spec - might not be installed?")
}
