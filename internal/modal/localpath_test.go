package modal

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestExpandHome(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for in, want := range map[string]string{
		"~":        home,
		"~/":       home,
		"~/a/b":    filepath.Join(home, "a/b"),
		"~other/a": "~other/a", // another user's home: not expanded
		"a/~/b":    "a/~/b",
		"/abs/~":   "/abs/~",
		"rel":      "rel",
		"":         "",
	} {
		got, err := ExpandHome(in)
		if err != nil || got != want {
			t.Errorf("expandHome(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	t.Setenv("HOME", "")
	if got, err := ExpandHome("~/a"); err == nil || !strings.Contains(err.Error(), `local path "~/a": cannot expand ~`) {
		t.Errorf(`expandHome("~/a") with no $HOME = %q, %v; want an error`, got, err)
	}
	if got, err := ExpandHome("a"); err != nil || got != "a" {
		t.Errorf(`expandHome("a") with no $HOME = %q, %v`, got, err)
	}
}
