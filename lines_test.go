package snapbuild

import (
	"errors"
	"fmt"

	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/snapbuild/snapbuild/internal/modal"
)

// Every method that writes a user value into a Dockerfile line refuses a
// value with a line break, naming the method, the argument and the value;
// before, the value split the line and the layer held a bogus instruction
// (or failed to parse only when built).
func TestLineBreakRefused(t *testing.T) {
	base := instBase(t)
	dir := t.TempDir()
	pyproject := instWrite(t, filepath.Join(dir, "pyproject.toml"), "[project]\ndependencies = [\"a\"]\n[project.optional-dependencies]\nx = [\"b\"]\n")
	instWrite(t, filepath.Join(dir, "poetry.lock"), "")
	const bad = "a\nRUN touch /evil"
	for _, c := range []struct {
		img          Image
		method, name string
	}{
		{base.Env(map[string]string{"A": bad}), "env", `vars["A"]`},
		{base.EnvVars(EnvVar{"B", "ok"}, EnvVar{"A", bad}), "env", `vars["A"]`},
		{base.Workdir("/srv/" + bad), "workdir", "path"},
		{base.AptInstall([]string{"git", bad}), "apt_install", "packages[1]"},
		{base.PipInstall([]string{bad}), "pip_install", "packages[0]"},
		{base.PipInstallWith([]string{"a"}, PipOptions{ExtraOptions: bad}), "pip_install", "extra_options"},
		{base.PipInstallWith([]string{"a"}, PipOptions{IndexURL: bad}), "pip_install", "index_url"},
		{base.PipInstallWith([]string{"a", bad}, PipOptions{}), "pip_install", "packages[1]"},
		{base.PipInstallFromRequirements(filepath.Join(dir, "r.txt"), PipOptions{FindLinks: bad}), "pip_install_from_requirements", "find_links"},
		{base.PipInstallFromPyproject(pyproject, []string{"x", bad}, PipOptions{}), "pip_install_from_pyproject", "optional_dependencies[1]"},
		{base.PipInstallPrivateRepos([]string{"github.com/a/b"}, bad, PipOptions{}, Secrets(SecretFromDict(map[string]string{"GITHUB_TOKEN": "t"}))), "pip_install_private_repos", "git_user"},
		{base.UvPipInstall([]string{"a"}, UvPipOptions{ExtraIndexURL: bad}), "uv_pip_install", "extra_index_url"},
		{base.UvPipInstall([]string{"a"}, UvPipOptions{UvVersion: bad}), "uv_pip_install", "uv_version"},
		{base.UvSync(dir, UvSyncOptions{Groups: []string{bad}}), "uv_sync", "groups[0]"},
		{base.PoetryInstallFromFile(pyproject, PoetryOptions{Only: []string{"main", bad}}), "poetry_install_from_file", "only[1]"},
		{base.MicromambaInstall([]string{"numpy"}, MicromambaOptions{Channels: []string{bad}}), "micromamba_install", "channels[0]"},
		{FromID("im-1\nRUN touch /evil"), "from_id", "image_id"},
	} {
		err := c.img.Err()
		var ie *InvalidError
		if !errors.As(err, &ie) {
			t.Errorf("%s %s: error %v, commands %q; want an *InvalidError", c.method, c.name, err, c.img.Commands())
			continue
		}
		value := bad
		if c.method == "workdir" {
			value = "/srv/" + bad
		}
		if c.method == "from_id" {
			value = "im-1\nRUN touch /evil"
		}
		want := fmt.Sprintf("%s %q holds a line break", c.name, value)
		if ie.Method != c.method || !strings.HasPrefix(ie.Message, want) {
			t.Errorf("error = %q, want method %s and a message starting %q", err, c.method, want)
		}
	}
}

// A carriage return is no line break for BuildKit's parser: the value keeps
// it, in one instruction.
func TestCarriageReturnKept(t *testing.T) {
	l := instLast(t, instBase(t).EnvVars(EnvVar{"A", "x\ry"}, EnvVar{"B", "z"}))
	ins := instParse(t, l, &instructions.Stage{}, &instructions.EnvCommand{}, &instructions.EnvCommand{})
	kv := ins[1].Cmd.(*instructions.EnvCommand).Env[0]
	if kv.Key != "A" || kv.Value != "'x\ry'" {
		t.Errorf("ENV A: %+v", kv)
	}
}

// Exec-form lists are written as JSON, which escapes a line break: the
// value keeps it, in one instruction.
func TestLineBreakInExecForm(t *testing.T) {
	args := []string{"/bin/sh", "-c", "echo a\necho b"}
	base := instBase(t)
	for _, c := range []struct {
		img  Image
		args func(any) []string
	}{
		{base.Entrypoint(args), func(c any) []string { return c.(*instructions.EntrypointCommand).CmdLine }},
		{base.Cmd(args), func(c any) []string { return c.(*instructions.CmdCommand).CmdLine }},
		{base.Shell(args), func(c any) []string { return c.(*instructions.ShellCommand).Shell }},
	} {
		l := instLast(t, c.img)
		ins, err := modal.ParseCommands(l.Commands)
		if err != nil || len(ins) != 2 {
			t.Fatalf("%s: modal.ParseCommands(%q) = %d instructions, %v", l.Method, l.Commands, len(ins), err)
		}
		if got := c.args(ins[1].Cmd); !reflect.DeepEqual(got, args) {
			t.Errorf("%s: %q, want %q", l.Method, got, args)
		}
	}
}

// A run_commands command ending in a line continuation would join the next
// RUN to it ("RUN echo a RUN echo b").
func TestRunCommandsTrailingContinuation(t *testing.T) {
	base := instBase(t)
	for _, c := range []string{"echo a \\", "echo a \\ ", "echo a && \\\n  echo b \\\n"} {
		img := base.RunCommands([]string{c, "echo b"})
		want := fmt.Sprintf("command %q ends with a line continuation", c)
		if err := img.Err(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("RunCommands(%q): error %v, commands %q; want %q", c, err, img.Commands(), want)
		}
	}
	// A backslash inside the line is no continuation.
	if err := base.RunCommands([]string{`printf 'a\n'`, "echo b"}).Err(); err != nil {
		t.Error(err)
	}
}

// The safety net: a layer lowered from user values whose commands hold a
// line break is refused even when its method did not check the value.
func TestCheckLinesSafetyNet(t *testing.T) {
	base := instBase(t)
	img := base.with(&modal.Layer{Method: "apt_install", Commands: []string{"FROM base", "RUN apt-get install -y 'a\nb'"}}, nil)
	if err := img.Err(); err == nil || !strings.Contains(err.Error(), "would split the Dockerfile line") {
		t.Errorf("error = %v, commands %q", err, img.Commands())
	}
	// Dockerfile text the user wrote keeps its line breaks.
	img = base.DockerfileCommands([]string{"RUN echo a && \\\n  echo b", "ENV A=1\nENV B=2"}, DockerfileOptions{})
	if err := img.Err(); err != nil {
		t.Errorf("dockerfile_commands: %v", err)
	}
}
