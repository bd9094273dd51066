package snapbuild

import (
	"reflect"
	"testing"
)

func TestNonPythonFiles(t *testing.T) {
	var got []string
	for _, p := range []string{"a.py", "pkg/b.py", "pkg/.hidden/c.py", "pkg/b.pyc", "pkg/data.json", "pkg/__pycache__/b.cpython-311.pyc"} {
		if ok, err := NonPythonFiles.Match(p); err != nil {
			t.Fatalf("Match(%q): %v", p, err)
		} else if ok {
			got = append(got, p)
		}
	}
	if want := []string{"pkg/b.pyc", "pkg/data.json", "pkg/__pycache__/b.cpython-311.pyc"}; !reflect.DeepEqual(got, want) {
		t.Errorf("NON_PYTHON_FILES matched %q, want %q", got, want)
	}
}
