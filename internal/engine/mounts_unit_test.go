package engine

import (
	"reflect"
	"testing"

	"github.com/snapbuild/snapbuild/internal/modal"
)

// A copy=false directory with a modal.MatcherFunc is stored as the files the
// function selected; a FilePatternMatcher as itself.
func TestStoredMatcher(t *testing.T) {
	dir, _ := uContextTree(t)
	in := modal.ContextInput{Local: dir, Remote: "/app", Dir: true, Ignore: modal.MatcherFunc(func(rel string) bool { return rel != "a.py" && rel != "sub/c.py" })}
	s, err := StoredMatcher(in.Ignore, in)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a.py", "sub/c.py"}; !reflect.DeepEqual(s.Keep, want) {
		t.Errorf("Keep = %q, want %q", s.Keep, want)
	}
	back := s.Matcher()
	if got := matchAll(t, back, "a.py", "sub/c.py", "b.pyc", "new.py"); !reflect.DeepEqual(got, []string{"b.pyc", "new.py"}) {
		t.Errorf("stored matcher matched %q", got)
	}
	fpm := modal.NewFilePatternMatcher("*.pyc").Invert()
	s, err = StoredMatcher(fpm, in)
	if err != nil || !reflect.DeepEqual(*s, modal.MatcherSpec{Patterns: []string{"*.pyc"}, Inverted: true}) {
		t.Errorf("stored FilePatternMatcher = %+v, %v", s, err)
	}
}

// matchAll returns the paths m matches, in order.
func matchAll(t *testing.T, m modal.Matcher, paths ...string) []string {
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
