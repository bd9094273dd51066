package snapbuild

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
	if ok, err := dockerignoreMatcher(filepath.Join(dir, "nope")).Match("a"); ok || err != nil {
		t.Errorf("optional missing .dockerignore: %v %v, want no match and no error", ok, err)
	}
}

func TestNonPythonFiles(t *testing.T) {
	got := matchAll(t, NonPythonFiles, "a.py", "pkg/b.py", "pkg/.hidden/c.py", "pkg/b.pyc", "pkg/data.json", "pkg/__pycache__/b.cpython-311.pyc")
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

// A copy=false directory with a MatcherFunc is stored as the files the
// function selected; a FilePatternMatcher as itself.
func TestStoredMatcher(t *testing.T) {
	dir, _ := uContextTree(t)
	in := contextInput{local: dir, remote: "/app", dir: true, ignore: MatcherFunc(func(rel string) bool { return rel != "a.py" && rel != "sub/c.py" })}
	s, err := storedMatcher(in.ignore, in)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a.py", "sub/c.py"}; !reflect.DeepEqual(s.Keep, want) {
		t.Errorf("Keep = %q, want %q", s.Keep, want)
	}
	back := &FilePatternMatcher{spec: *s}
	if got := matchAll(t, back, "a.py", "sub/c.py", "b.pyc", "new.py"); !reflect.DeepEqual(got, []string{"b.pyc", "new.py"}) {
		t.Errorf("stored matcher matched %q", got)
	}
	fpm := NewFilePatternMatcher("*.pyc").Invert()
	s, err = storedMatcher(fpm, in)
	if err != nil || !reflect.DeepEqual(*s, matcherSpec{Patterns: []string{"*.pyc"}, Inverted: true}) {
		t.Errorf("stored FilePatternMatcher = %+v, %v", s, err)
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
