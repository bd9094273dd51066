package engine

import "testing"

func TestExpandKnown(t *testing.T) {
	env := []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
	for in, want := range map[string]string{
		"/x:$PATH":        "/x:/usr/bin:/bin",
		"/x:${PATH}:/y":   "/x:/usr/bin:/bin:/y",
		"$HOME/bin":       "$HOME/bin",
		"cost $5":         "cost $5",
		"$LANG-$LANGUAGE": "C.UTF-8-$LANGUAGE",
		"no references":   "no references",
		"$$PATH":          "$/usr/bin:/bin",
	} {
		if got := expandKnown(in, env); got != want {
			t.Errorf("expandKnown(%q) = %q, want %q", in, got, want)
		}
	}
}
