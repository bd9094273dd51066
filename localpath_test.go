package snapbuild

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/snapbuild/snapbuild/internal/modal"
)

// Every local path is expanded the same way: each case reads a file given
// as "~/...", with $HOME pointing at a directory that has it. Before,
// add_local_file, Secret.from_dotenv and dockerfile_commands(context_files=)
// read "~/..." relative to the working directory.
func TestTildeExpandedForEveryLocalPath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Chdir(t.TempDir()) // no "~" directory here
	instWrite(t, filepath.Join(home, "f.txt"), "file\n")
	instWrite(t, filepath.Join(home, "d", "in.txt"), "in dir\n")
	instWrite(t, filepath.Join(home, "d", "skip.log"), "")
	instWrite(t, filepath.Join(home, "ignore"), "*.log\n")
	instWrite(t, filepath.Join(home, "s.env"), "TOKEN=t0\n")
	instWrite(t, filepath.Join(home, "Dockerfile"), "FROM scratch\nCOPY f.txt /f.txt\n")
	instWrite(t, filepath.Join(home, "app", "main.py"), "print(1)\n")
	base := instBase(t)

	// The files a layer's build context takes, as paths in the image.
	contextOf := func(t *testing.T, img Image) []string {
		t.Helper()
		files, err := resolveContext(instLast(t, img))
		if err != nil {
			t.Fatal(err)
		}
		var paths []string
		for _, f := range files {
			paths = append(paths, f.path)
		}
		return paths
	}
	ignore := FilePatternMatcherFromFile("~/ignore")
	for name, c := range map[string]struct {
		img  Image
		want []string
	}{
		"add_local_file":                {base.AddLocalFile("~/f.txt", "/x/", true), []string{"x/f.txt"}},
		"add_local_file copy=False":     {base.AddLocalFile("~/f.txt", "/x/f", false), []string{"x/f"}},
		"add_local_dir":                 {base.AddLocalDir("~/d", "/d", true, ignore), []string{"d/in.txt"}},
		"dockerfile_commands":           {base.DockerfileCommands([]string{"COPY a /a"}, DockerfileOptions{ContextFiles: map[string]string{"a": "~/f.txt"}}), []string{"a"}},
		"dockerfile_commands context":   {base.DockerfileCommands([]string{"COPY f.txt /f"}, DockerfileOptions{ContextDir: "~"}), []string{"f.txt"}},
		"pip_install_from_requirements": {base.PipInstallFromRequirements("~/f.txt", PipOptions{}), []string{".requirements.txt"}},
		"micromamba_install":            {base.MicromambaInstall(nil, MicromambaOptions{SpecFile: "~/f.txt"}), []string{"f.txt"}},
	} {
		if got := contextOf(t, c.img); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: context %q, want %q", name, got, c.want)
		}
	}

	// from_dockerfile reads the Dockerfile and the context from ~.
	img := FromDockerfile("~/Dockerfile", FromDockerfileOptions{ContextDir: "~"})
	if err := img.Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := resolveContext(img.layers[0]); err != nil || len(got) != 1 || got[0].path != "f.txt" {
		t.Errorf("from_dockerfile: context %+v, %v", got, err)
	}

	vars, err := SecretFromDotenv("~/s.env").Load()
	if err != nil || vars["TOKEN"] != "t0" {
		t.Errorf("Secret.from_dotenv: %v, %v", vars, err)
	}
	keyOf := func(src string) (string, error) {
		return (&modal.FunctionStep{Fn: Function{Module: "app", Name: "f", Source: src}}).KeyInputs()
	}
	want, err := keyOf(filepath.Join(home, "app"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := keyOf("~/app"); err != nil || got != want {
		t.Errorf("function source: digest %q, %v; want %q", got, err, want)
	}
}

// Without a home directory, a "~" path is an error naming the method and the
// argument, not a path relative to the working directory.
func TestTildeWithoutHome(t *testing.T) {
	base := instBase(t)
	t.Setenv("HOME", "")
	for _, c := range []struct {
		img            Image
		method, prefix string
	}{
		{base.AddLocalFile("~/f", "/f", true), "add_local_file", `local_path: local path "~/f": cannot expand ~`},
		{base.AddLocalDir("~/d", "/d", false, nil), "add_local_dir", `local_path: local path "~/d": cannot expand ~`},
		{base.PipInstallFromRequirements("~/r.txt", PipOptions{}), "pip_install_from_requirements", `local path "~/r.txt": cannot expand ~`},
		{base.DockerfileCommands([]string{"RUN true"}, DockerfileOptions{ContextFiles: map[string]string{"a": "~/a"}}), "dockerfile_commands", `context_files["a"]: local path "~/a": cannot expand ~`},
	} {
		var ie *InvalidError
		if err := c.img.Err(); !errors.As(err, &ie) || ie.Method != c.method || !strings.HasPrefix(ie.Message, c.prefix) {
			t.Errorf("error %v; want %s: %s...", err, c.method, c.prefix)
		}
	}
	if _, err := SecretFromDotenv("~/s.env").Load(); err == nil || !strings.Contains(err.Error(), "cannot expand ~") {
		t.Errorf("Secret.from_dotenv: %v", err)
	}
}
