package snapbuild

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
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

func TestResolveContextMatchers(t *testing.T) {
	dir, _ := uContextTree(t)
	paths := func(m Matcher) []string {
		t.Helper()
		files, err := resolveContext(uBase(t).AddLocalDir(dir, "/", true, m).layers[1])
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, f := range files {
			out = append(out, f.path)
		}
		return out
	}
	// ~FilePatternMatcher: keep only what the patterns match.
	if got, want := paths(NewFilePatternMatcher("**/*.py", "exec.sh").Invert()), []string{"a.py", "exec.sh", "sub/c.py"}; !reflect.DeepEqual(got, want) {
		t.Errorf("inverted: %q, want %q", got, want)
	}
	// A callable: given "/"-separated paths relative to the directory.
	var seen []string
	fn := MatcherFunc(func(rel string) bool {
		seen = append(seen, rel)
		return !strings.HasPrefix(rel, "sub/")
	})
	if got, want := paths(fn), []string{"sub/__pycache__/c.cpython-311.pyc", "sub/c.py", "sub/d.pyc"}; !reflect.DeepEqual(got, want) {
		t.Errorf("MatcherFunc: %q, want %q", got, want)
	}
	if len(seen) != 11 {
		t.Errorf("MatcherFunc saw %d paths, want all 11 files: %q", len(seen), seen)
	}
	// from_file, with an error that names the file.
	ign := filepath.Join(t.TempDir(), "ignore")
	if err := os.WriteFile(ign, []byte("*\n!a.py\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := paths(FilePatternMatcherFromFile(ign)), []string{"a.py"}; !reflect.DeepEqual(got, want) {
		t.Errorf("from_file: %q, want %q", got, want)
	}
	_, err := resolveContext(uBase(t).AddLocalDir(dir, "/", true, FilePatternMatcherFromFile(ign+".missing")).layers[1])
	if err == nil || !strings.Contains(err.Error(), "add_local_dir") || !strings.Contains(err.Error(), ign+".missing") {
		t.Errorf("missing from_file: %v", err)
	}
}

// matchAll returns the paths m matches, in order.
func matchAll(t *testing.T, m Matcher, paths ...string) []string {
	t.Helper()
	out := []string{}
	for _, p := range paths {
		ok, err := m.Match(p)
		if err != nil {
			t.Fatalf("Match(%q): %v", p, err)
		}
		if ok {
			out = append(out, p)
		}
	}
	return out
}
