package main

import (
	"slices"
	"strings"
	"testing"
)

func TestSplitShortFlags(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"-it", "img", "bash"}, []string{"-i", "-t", "img", "bash"}},
		{[]string{"-ti", "img"}, []string{"-t", "-i", "img"}},
		{[]string{"-i", "-t", "img"}, []string{"-i", "-t", "img"}},
		// Flags after the image name belong to the command.
		{[]string{"img", "ls", "-it"}, []string{"img", "ls", "-it"}},
		{[]string{"-t", "img", "--", "-it"}, []string{"-t", "img", "--", "-it"}},
		// A flag's value is not a flag, even when it looks like "-it".
		{[]string{"-e", "-it", "img"}, []string{"-e", "-it", "img"}},
		{[]string{"--entrypoint", "", "-it", "img"}, []string{"--entrypoint", "", "-i", "-t", "img"}},
		{[]string{"--root=/s", "-it", "img"}, []string{"--root=/s", "-i", "-t", "img"}},
		// Long flags and other letters are left to the flag package.
		{[]string{"--it", "img"}, []string{"--it", "img"}},
		{[]string{"-iw", "/x", "img"}, []string{"-iw", "/x", "img"}},
	} {
		if got := splitShortFlags(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("splitShortFlags(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseEntrypoint(t *testing.T) {
	for in, want := range map[string][]string{
		"":                   nil,
		"sh":                 {"sh"},
		"/bin/sh -c":         {"/bin/sh -c"}, // one program, as docker's
		`["/bin/sh", "-c"]`:  {"/bin/sh", "-c"},
		`[]`:                 {},
		` ["python3", "-u"]`: {"python3", "-u"},
	} {
		got, err := parseEntrypoint(in)
		if err != nil || !slices.Equal(got, want) || (want != nil) != (got != nil) {
			t.Errorf("parseEntrypoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := parseEntrypoint(`["sh", 1]`); err == nil || !strings.Contains(err.Error(), "--entrypoint") {
		t.Errorf("parseEntrypoint of a bad array: %v, want an error naming --entrypoint", err)
	}
}

// -e KEY=VALUE is kept; a bare -e KEY passes KEY's value, as docker and
// podman do, and nothing when KEY is not set.
func TestRunEnv(t *testing.T) {
	lookup := func(k string) (string, bool) {
		if k == "HOSTVAR" {
			return "from host", true
		}
		return "", false
	}
	got, err := runEnv([]string{"A=1", "HOSTVAR", "UNSET", "B="}, lookup)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"A=1", "HOSTVAR=from host", "B="}; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("runEnv = %q, want %q", got, want)
	}
	if _, err := runEnv([]string{"=x"}, lookup); err == nil {
		t.Error("runEnv accepted -e =x")
	}
}
