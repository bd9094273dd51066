package recipe

import (
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/snapbuild/snapbuild"
)

// ignore= in a recipe: patterns, or a mapping for from_file and invert, read
// into the FilePatternMatcher the Go API would be given.
func TestIgnoreArgument(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want snapbuild.Matcher
	}{
		{"{}", nil},
		{"{ignore: null}", nil},
		{"{ignore: '*.pyc'}", snapbuild.NewFilePatternMatcher("*.pyc")},
		{"{ignore: []}", snapbuild.NewFilePatternMatcher()},
		{"{ignore: ['*', '!*.py']}", snapbuild.NewFilePatternMatcher("*", "!*.py")},
		{"{ignore: {patterns: ['**/*.py'], invert: true}}", snapbuild.NewFilePatternMatcher("**/*.py").Invert()},
		{"{ignore: {from_file: .gitignore}}", snapbuild.FilePatternMatcherFromFile("/recipes/.gitignore")},
		{"{ignore: {from_file: /abs/ign, invert: true}}", snapbuild.FilePatternMatcherFromFile("/abs/ign").Invert()},
	} {
		got, err := matcherOf(t, tc.src)
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		if tc.want == nil {
			if got != nil {
				t.Errorf("%s: %v, want nil (the method's default)", tc.src, got)
			}
			continue
		}
		if got == nil || got.(*snapbuild.FilePatternMatcher).String() != tc.want.(*snapbuild.FilePatternMatcher).String() {
			t.Errorf("%s: %v, want %v", tc.src, got, tc.want)
		}
	}
	for src, want := range map[string]string{
		"{ignore: {patterns: [a], from_file: b}}":  "add_local_dir: ignore takes patterns or from_file, not both",
		"{ignore: {pattern: [a]}}":                 `add_local_dir: ignore: unknown argument "pattern" (known: from_file, invert, patterns)`,
		"{ignore: {patterns: [a], invert: maybe}}": "add_local_dir: ignore: invert must be true or false",
		"{ignore: [1]}":                            `add_local_dir: ignore must only contain strings (quote "1")`,
	} {
		if _, err := matcherOf(t, src); err == nil || err.Error() != want {
			t.Errorf("%s: error %v, want %q", src, err, want)
		}
	}
}

func matcherOf(t *testing.T, src string) (snapbuild.Matcher, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	a, err := newArgs("add_local_dir", doc.Content[0], "")
	if err != nil {
		t.Fatal(err)
	}
	a.dir = "/recipes"
	return a.matcher("ignore")
}
