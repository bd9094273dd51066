package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestDockerfileDefinition checks that build's Dockerfile arguments are
// read as docker build reads them: CONTEXT defaults to ".", -f to
// CONTEXT/Dockerfile (else Containerfile, as podman, else dockerfile), a relative -f is relative to the working directory,
// and the image is named after the context directory.
func TestDockerfileDefinition(t *testing.T) {
	dir := t.TempDir()
	ctx := filepath.Join(dir, "myapp")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(ctx, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM scratch\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "other.Dockerfile"), []byte("FROM scratch\n"), 0o644))
	must(os.MkdirAll(filepath.Join(dir, "podapp"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "podapp", "Containerfile"), []byte("FROM scratch\n"), 0o644))
	must(os.MkdirAll(filepath.Join(dir, "both"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "both", "Containerfile"), []byte("FROM scratch\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "both", "Dockerfile"), []byte("FROM scratch\n"), 0o644))
	must(os.MkdirAll(filepath.Join(dir, "lower"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "lower", "dockerfile"), []byte("FROM scratch\n"), 0o644))
	t.Chdir(dir)

	for _, tc := range []struct {
		pos        []string
		file       string
		name, path string
		err        string
	}{
		{pos: []string{"myapp"}, name: "myapp", path: filepath.Join(ctx, "Dockerfile")},
		{pos: []string{"myapp"}, file: "other.Dockerfile", name: "myapp", path: filepath.Join(dir, "other.Dockerfile")},
		{pos: []string{"podapp"}, name: "podapp", path: filepath.Join(dir, "podapp", "Containerfile")},
		{pos: []string{"both"}, name: "both", path: filepath.Join(dir, "both", "Dockerfile")},
		{pos: []string{"lower"}, name: "lower", path: filepath.Join(dir, "lower", "dockerfile")},
		{pos: []string{"myapp/sub"}, err: "build: myapp/sub has no Dockerfile (nor Containerfile): give one with -f FILE"},
		{pos: []string{"myapp/Dockerfile"}, file: "other.Dockerfile", err: "is not a directory"},
		{pos: []string{"nowhere"}, file: "other.Dockerfile", err: "build: build context: stat nowhere: no such file or directory"},
		{pos: []string{"myapp"}, file: "missing", err: "build: -f: stat " + filepath.Join(dir, "missing") + ": no such file or directory"},
	} {
		d, err := dockerfileDefinition(tc.pos, &dockerfileFlags{file: tc.file})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("dockerfileDefinition(%q, -f %q) = %v, want an error with %q", tc.pos, tc.file, err, tc.err)
			}
			continue
		}
		if err != nil || d.name != tc.name || d.label != tc.path {
			t.Errorf("dockerfileDefinition(%q, -f %q) = name %q, file %q, %v; want %q, %q", tc.pos, tc.file, d.name, d.label, err, tc.name, tc.path)
		}
	}
}

// TestBuildArgs checks --build-arg as docker reads it: NAME=VALUE, and a
// bare NAME taken from the environment, or left out when it is unset.
func TestBuildArgs(t *testing.T) {
	t.Setenv("FROM_ENV", "env value")
	os.Unsetenv("UNSET_ARG")
	got, err := buildArgs([]string{"A=1", "B=", "C=x=y", "FROM_ENV", "UNSET_ARG"})
	want := map[string]string{"A": "1", "B": "", "C": "x=y", "FROM_ENV": "env value"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("buildArgs = %v, %v; want %v", got, err, want)
	}
}

func TestMountSecrets(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("from file"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TOKEN_VAR", "from var")
	t.Setenv("SAME", "same name")
	got, err := mountSecrets([]string{"id=a,src=" + file, "id=b,env=TOKEN_VAR", "id=SAME", "type=file,id=c,source=" + file})
	want := map[string][]byte{"a": []byte("from file"), "b": []byte("from var"), "SAME": []byte("same name"), "c": []byte("from file")}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("mountSecrets = %q, %v; want %q", got, err, want)
	}
	os.Unsetenv("NOPE")
	for spec, msg := range map[string]string{
		"src=" + file:                  "give the secret's id=ID",
		"id=x,src=" + file + ",env=A":  "not both",
		"id=x,type=ssh":                "type=ssh",
		"id=x,bogus=1":                 `unknown key "bogus"`,
		"id=NOPE":                      "NOPE is not set",
		"id=x,src=" + dir + "/missing": "no such file",
		"id":                           "give id=ID",
	} {
		if _, err := mountSecrets([]string{spec}); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("--secret %s: %v, want an error saying %q", spec, err, msg)
		}
	}
}

// TestCheckRecipeArgDockerfile checks that a Dockerfile or Containerfile
// given where build takes a recipe or a context is refused with the
// docker build form to use.
func TestCheckRecipeArgDockerfile(t *testing.T) {
	for _, arg := range []string{"Dockerfile", "app/Containerfile", "build.dockerfile", "x.Containerfile"} {
		err := checkRecipeArg(arg, false)
		if err == nil || !strings.Contains(err.Error(), "looks like a Dockerfile") || !strings.Contains(err.Error(), "snapbuild build -f "+arg) {
			t.Errorf("checkRecipeArg(%q) = %v, want the -f hint", arg, err)
		}
	}
	if err := checkRecipeArg("app.yaml", false); err != nil {
		t.Errorf("checkRecipeArg(app.yaml) = %v, want nil", err)
	}
}
