package modal

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// matchAll returns, of paths, those m matches.
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

// Modal's documented examples, which were verified against Modal's
// FilePatternMatcher.
func TestFilePatternMatcherModalExamples(t *testing.T) {
	paths := []string{"a.py", "d/a.py", "d/e/a.py", "node_modules/x.js", "sub/node_modules/x.js",
		".git/config", "sub/.git/config", "README.md"}
	for _, tc := range []struct {
		patterns []string
		want     []string
	}{
		{[]string{"*.py"}, []string{"a.py"}},
		{[]string{"**/*.py"}, []string{"a.py", "d/a.py", "d/e/a.py"}},
		{[]string{"node_modules"}, []string{"node_modules/x.js"}},
		{[]string{".git"}, []string{".git/config"}},
		{[]string{"*", "!*.py"}, []string{"d/a.py", "d/e/a.py", "node_modules/x.js", "sub/node_modules/x.js",
			".git/config", "sub/.git/config", "README.md"}},
		{[]string{" /d/ ", "", "  "}, []string{"d/a.py", "d/e/a.py"}},
		{nil, []string{}},
	} {
		m := NewFilePatternMatcher(tc.patterns...)
		if got := matchAll(t, m, paths...); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: matched %q, want %q", m, got, tc.want)
		}
		// ~m matches exactly the rest.
		inv := m.Invert()
		got := matchAll(t, inv, paths...)
		if len(got)+len(tc.want) != len(paths) {
			t.Errorf("%s: matched %q, the complement of %q", inv, got, tc.want)
		}
		for _, p := range got {
			for _, w := range tc.want {
				if p == w {
					t.Errorf("%s matches %q as %s does", inv, p, m)
				}
			}
		}
		if back := inv.Invert(); !reflect.DeepEqual(matchAll(t, back, paths...), tc.want) {
			t.Errorf("~~%s differs from %s", m, m)
		}
	}
	if ok, _ := NewFilePatternMatcher("*").Match("."); ok {
		t.Error(`"." matched`)
	}
}

func TestFilePatternMatcherString(t *testing.T) {
	for m, want := range map[*FilePatternMatcher]string{
		NewFilePatternMatcher("*.pyc", "it's"):            `FilePatternMatcher('*.pyc', "it's")`,
		NewFilePatternMatcher("**/*.py").Invert():         `~FilePatternMatcher('**/*.py')`,
		FilePatternMatcherFromFile(".gitignore").Invert(): `~FilePatternMatcher.from_file('.gitignore')`,
	} {
		if got := m.String(); got != want {
			t.Errorf("String() = %s, want %s", got, want)
		}
	}
}

func TestFilePatternMatcherBareExclusion(t *testing.T) {
	for _, p := range []string{"!", " ! ", "!/"} {
		_, err := NewFilePatternMatcher("a", p).Match("a")
		if err == nil || err.Error() != `Illegal exclusion pattern: "!"` {
			t.Errorf("pattern %q: error %v, want Modal's ValueError message", p, err)
		}
	}
}

func TestFilePatternMatcherFromFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ignore")
	m := FilePatternMatcherFromFile(file)
	// Read lazily: the file may appear after the matcher is made.
	if err := os.WriteFile(file, []byte("*.log\r\nbuild/\n\n!build/keep\rtmp"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := matchAll(t, m, "a.log", "d/a.log", "build/x", "build/keep", "tmp/y", "src/a.py")
	if want := []string{"a.log", "build/x", "tmp/y"}; !reflect.DeepEqual(got, want) {
		t.Errorf("from_file matched %q, want %q", got, want)
	}
	if p, err := m.Patterns(); err != nil || !reflect.DeepEqual(p, []string{"*.log", "build", "!build/keep", "tmp"}) {
		t.Errorf("Patterns() = %q, %v", p, err)
	}

	missing := FilePatternMatcherFromFile(filepath.Join(dir, "nope"))
	if _, err := missing.Match("a"); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "nope")) {
		t.Errorf("missing file: %v, want an error naming it", err)
	}
	if ok, err := DockerignoreMatcher(filepath.Join(dir, "nope")).Match("a"); ok || err != nil {
		t.Errorf("optional missing .dockerignore: %v %v, want no match and no error", ok, err)
	}
}

// Patterns are cleaned as Docker's .dockerignore reader cleans them: "./x"
// is "x", so "!./keep.txt" re-includes keep.txt.
func TestFilePatternMatcherCleansPaths(t *testing.T) {
	m := NewFilePatternMatcher("*.txt", "!./keep.txt", "./d/../e/*.log")
	got := matchAll(t, m, "a.txt", "keep.txt", "e/x.log", "d/x.log")
	if want := []string{"a.txt", "e/x.log"}; !reflect.DeepEqual(got, want) {
		t.Errorf("matched %q, want %q", got, want)
	}
	if p, err := m.Patterns(); err != nil || !reflect.DeepEqual(p, []string{"*.txt", "!keep.txt", "e/*.log"}) {
		t.Errorf("Patterns() = %q, %v", p, err)
	}
}
