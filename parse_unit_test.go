package snapbuild

import (
	"reflect"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/snapbuild/snapbuild/internal/modal"
)

// uParseLast parses the last layer of img.
func uParseLast(t *testing.T, img Image) []instruction {
	t.Helper()
	cmds := uLastLayer(t, img)
	ins, err := modal.ParseCommands(cmds)
	if err != nil {
		t.Fatalf("modal.ParseCommands(%q): %v", cmds, err)
	}
	if len(ins) != len(cmds) {
		t.Fatalf("modal.ParseCommands(%q) gave %d instructions, want %d", cmds, len(ins), len(cmds))
	}
	for i := range ins {
		if ins[i].Text != cmds[i] {
			t.Errorf("instruction %d text = %q, want %q", i, ins[i].Text, cmds[i])
		}
	}
	return ins
}

// uExpandWord expands a Dockerfile word as execute does.
func uExpandWord(t *testing.T, env []string) func(string) (string, error) {
	lex := shell.NewLex('\\')
	return func(w string) (string, error) {
		s, _, err := lex.ProcessWord(w, shell.EnvsFromSlice(env))
		return s, err
	}
}

func uWantFromBase(t *testing.T, in instruction) {
	t.Helper()
	if !in.IsFrom() || in.FromRef() != "base" {
		t.Errorf("first instruction %q: isFrom=%v ref=%q, want FROM base", in.Text, in.IsFrom(), in.FromRef())
	}
}

func TestParseDebianSlimLayer(t *testing.T) {
	for _, v := range []string{"3.11", "3.13"} {
		ins := uParseLast(t, DebianSlim(v))
		if !ins[0].IsFrom() {
			t.Fatalf("%s: first instruction %T is not FROM", v, ins[0].Cmd)
		}
		want := map[string]string{"3.11": "python:3.11-slim-bookworm", "3.13": "python:3.13-slim-trixie"}[v]
		if ins[0].FromRef() != want {
			t.Errorf("%s: FROM ref = %q, want %q", v, ins[0].FromRef(), want)
		}
		c, ok := ins[1].Cmd.(*instructions.CmdCommand)
		if !ok {
			t.Fatalf("%s: second instruction is %T, want *CmdCommand", v, ins[1].Cmd)
		}
		if c.PrependShell || !reflect.DeepEqual(c.CmdLine, []string{"sleep", "172800"}) {
			t.Errorf("%s: CMD = %+v", v, c.ShellDependantCmdLine)
		}
	}
	ins := uParseLast(t, FromID("im-0123456789abcdefghijkl"))
	if ins[0].FromRef() != "im-0123456789abcdefghijkl" {
		t.Errorf("FromID ref = %q", ins[0].FromRef())
	}
}

func TestParseAptAndRunLayers(t *testing.T) {
	base := uBase(t)
	ins := uParseLast(t, base.AptInstall([]string{"git", "libfoo>=1"}))
	uWantFromBase(t, ins[0])
	for i, want := range []string{"apt-get update", "apt-get install -y git 'libfoo>=1'"} {
		r, ok := ins[i+1].Cmd.(*instructions.RunCommand)
		if !ok {
			t.Fatalf("instruction %d is %T, want *RunCommand", i+1, ins[i+1].Cmd)
		}
		if !r.PrependShell || !reflect.DeepEqual(r.CmdLine, []string{want}) || len(r.FlagsUsed) != 0 {
			t.Errorf("RUN %d = %+v flags %v", i+1, r.ShellDependantCmdLine, r.FlagsUsed)
		}
	}

	ins = uParseLast(t, base.RunCommands([]string{"cd /tmp", "echo $HOME > /x"}))
	for i, want := range []string{"cd /tmp", "echo $HOME > /x"} {
		r, ok := ins[i+1].Cmd.(*instructions.RunCommand)
		if !ok || !r.PrependShell || !reflect.DeepEqual(r.CmdLine, []string{want}) {
			t.Errorf("RUN %d = %T %+v", i+1, ins[i+1].Cmd, ins[i+1].Cmd)
		}
	}

	ins = uParseLast(t, base.PipInstall([]string{"numpy", "Django"}))
	r, ok := ins[1].Cmd.(*instructions.RunCommand)
	if !ok || !reflect.DeepEqual(r.CmdLine, []string{"python -m pip install Django numpy"}) {
		t.Errorf("pip RUN = %T %+v", ins[1].Cmd, ins[1].Cmd)
	}
}

func TestParseEnvLayerExpandsLikeModal(t *testing.T) {
	img := uBase(t).Env(map[string]string{"A": "x y", "B": "$HOME", "C": "", "D": "it's"})
	ins := uParseLast(t, img)
	uWantFromBase(t, ins[0])
	want := []instructions.KeyValuePair{{Key: "A", Value: "x y"}, {Key: "B", Value: "$HOME"}, {Key: "C", Value: ""}, {Key: "D", Value: "it's"}}
	for i, w := range want {
		e, ok := ins[i+1].Cmd.(*instructions.EnvCommand)
		if !ok {
			t.Fatalf("instruction %d is %T, want *EnvCommand", i+1, ins[i+1].Cmd)
		}
		// After the expansion execute applies, the value is the literal given:
		// single quotes stop Docker from expanding $HOME.
		if err := e.Expand(uExpandWord(t, []string{"HOME=/root"})); err != nil {
			t.Fatal(err)
		}
		if len(e.Env) != 1 || e.Env[0].Key != w.Key || e.Env[0].Value != w.Value {
			t.Errorf("ENV %d = %+v, want %+v", i+1, e.Env, w)
		}
	}
}

func TestParseWorkdirAndExecFormLayers(t *testing.T) {
	base := uBase(t)
	ins := uParseLast(t, base.Workdir("/my dir"))
	w, ok := ins[1].Cmd.(*instructions.WorkdirCommand)
	if !ok {
		t.Fatalf("got %T, want *WorkdirCommand", ins[1].Cmd)
	}
	if err := w.Expand(uExpandWord(t, nil)); err != nil {
		t.Fatal(err)
	}
	if w.Path != "/my dir" {
		t.Errorf("WORKDIR path = %q", w.Path)
	}

	ins = uParseLast(t, base.Entrypoint([]string{"/bin/sh", "-c", `echo "x" \ y`}))
	e, ok := ins[1].Cmd.(*instructions.EntrypointCommand)
	if !ok {
		t.Fatalf("got %T, want *EntrypointCommand", ins[1].Cmd)
	}
	if e.PrependShell || !reflect.DeepEqual(e.CmdLine, []string{"/bin/sh", "-c", `echo "x" \ y`}) {
		t.Errorf("ENTRYPOINT = %+v (escaped items must round-trip through JSON exec form)", e.ShellDependantCmdLine)
	}

	ins = uParseLast(t, base.Entrypoint(nil))
	e, ok = ins[1].Cmd.(*instructions.EntrypointCommand)
	if !ok || e.PrependShell || len(e.CmdLine) != 0 {
		t.Errorf("ENTRYPOINT [] = %T %+v", ins[1].Cmd, ins[1].Cmd)
	}

	ins = uParseLast(t, base.Cmd([]string{"python", "app.py"}))
	c, ok := ins[1].Cmd.(*instructions.CmdCommand)
	if !ok || c.PrependShell || !reflect.DeepEqual(c.CmdLine, []string{"python", "app.py"}) {
		t.Errorf("CMD = %T %+v", ins[1].Cmd, ins[1].Cmd)
	}

	ins = uParseLast(t, base.Shell([]string{"/bin/bash", "-c"}))
	s, ok := ins[1].Cmd.(*instructions.ShellCommand)
	if !ok || !reflect.DeepEqual(s.Shell, []string{"/bin/bash", "-c"}) {
		t.Errorf("SHELL = %T %+v", ins[1].Cmd, ins[1].Cmd)
	}
}

func TestParseCopyLayers(t *testing.T) {
	base := uBase(t)
	for _, img := range []Image{
		base.AddLocalFile("/a/b.txt", "/c/", true),
		base.AddLocalDir("/a", "/c", true, nil),
	} {
		ins := uParseLast(t, img)
		uWantFromBase(t, ins[0])
		c, ok := ins[1].Cmd.(*instructions.CopyCommand)
		if !ok {
			t.Fatalf("got %T, want *CopyCommand", ins[1].Cmd)
		}
		if !reflect.DeepEqual(c.SourcePaths, []string{"."}) || c.DestPath != "/" || c.From != "" || c.Chown != "" || c.Chmod != "" {
			t.Errorf("COPY = %+v", c)
		}
	}
}

func TestParseCommandsErrors(t *testing.T) {
	if _, err := modal.ParseCommands([]string{"FROM base", "FROBNICATE x"}); err == nil {
		t.Error("unknown instruction: no error")
	}
	if _, err := modal.ParseCommands(nil); err == nil {
		t.Error("modal.ParseCommands(nil): no error")
	}
	// RUN flags parse; the builder refuses them later (FlagsUsed).
	ins, err := modal.ParseCommands([]string{"FROM base", "RUN --network=none true"})
	if err != nil {
		t.Fatal(err)
	}
	r, ok := ins[1].Cmd.(*instructions.RunCommand)
	if !ok || len(r.FlagsUsed) == 0 {
		t.Errorf("RUN --network: %T %+v", ins[1].Cmd, ins[1].Cmd)
	}
}
