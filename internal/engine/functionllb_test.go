package engine

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"

	"github.com/snapbuild/snapbuild/frontend"
	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/internal/modal"
)

// TestFunctionLLB checks run_function's exec op: the image's user, working
// directory and environment with PYTHONUNBUFFERED set, the runner, the
// runtime and the source file mounted read-only where the runner finds
// them, and the op mapped to the layer's RUN_FUNCTION line.
func TestFunctionLLB(t *testing.T) {
	b := uBuilder(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "app.py")
	if err := os.WriteFile(src, []byte("def f(): pass\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := &buildState{}
	st.config.Env = []string{"PATH=/usr/bin:/bin", "PYTHONUNBUFFERED=0"}
	st.config.User, st.config.WorkingDir = "app", "/srv"
	if _, err := b.writeManifest(st); err != nil {
		t.Fatal(err)
	}
	img := FromScratch().RunFunction(modal.Function{Module: "app", Name: "f", Source: src}, modal.FunctionCall{Args: []any{1}})
	l := img.layers[len(img.layers)-1]
	x := &llbLayer{b: b, l: l}
	rt := t.TempDir()
	def, cfg, locals, err := x.functionLLB(context.Background(), st, "FROM base\n"+l.Function.Title(), rt)
	if err != nil {
		t.Fatal(err)
	}
	g, err := build.Load(def)
	if err != nil {
		t.Fatal(err)
	}
	var exec *pb.ExecOp
	var execDigest digest.Digest
	for v := g.Target.Vertex; v != nil && len(v.Inputs) > 0; v = v.Inputs[0].Vertex {
		if e := v.Op.GetExec(); e != nil {
			exec, execDigest = e, v.Digest
		}
	}
	if exec == nil {
		t.Fatal("no exec op in the graph")
	}
	m := exec.Meta
	if m.User != "app" || m.Cwd != "/srv" {
		t.Errorf("user %q, cwd %q; want the image's", m.User, m.Cwd)
	}
	if !slices.Contains(m.Env, "PYTHONUNBUFFERED=1") || slices.Contains(m.Env, "PYTHONUNBUFFERED=0") || !slices.Contains(m.Env, "PATH=/usr/bin:/bin") {
		t.Errorf("env %q", m.Env)
	}
	if len(m.Args) < 4 || m.Args[0] != "/bin/sh" || !strings.Contains(strings.Join(m.Args, " "), "python") {
		t.Errorf("args %q", m.Args)
	}
	mounts := map[string]*pb.Mount{}
	for _, mt := range exec.Mounts {
		mounts[mt.Dest] = mt
	}
	if rtm := mounts[modal.FunctionRuntimeDir]; rtm == nil || !rtm.Readonly {
		t.Errorf("runtime mount at %s: %+v", modal.FunctionRuntimeDir, rtm)
	}
	if sm := mounts["/root/app.py"]; sm == nil || !sm.Readonly || sm.Selector != "app.py" {
		t.Errorf("source mount at /root/app.py: %+v", sm)
	}
	if len(locals) != 2 || locals[0].dir != rt || locals[1].dir != dir {
		t.Errorf("locals %+v", locals)
	}
	for _, f := range []string{functionKeyFile, path.Base(frontend.RequestPath)} {
		if _, err := os.Stat(filepath.Join(rt, f)); err != nil {
			t.Errorf("runtime dir: %v", err)
		}
	}
	if cfg.Config.User != "app" || len(cfg.History) != 1 || cfg.History[0].CreatedBy != l.Function.Title() {
		t.Errorf("image config: user %q, history %+v", cfg.Config.User, cfg.History)
	}
	locs := def.Source.Locations[string(execDigest)]
	if locs == nil || len(locs.Locations) == 0 || locs.Locations[0].Ranges[0].Start.Line != 2 {
		t.Errorf("the exec op's source location: %+v, want line 2", locs)
	}
}

// TestFunctionKey checks what a run_function layer's cache key follows, as
// a dry run computes it: with a Definition, the definition and not the
// rest of the source file (Modal's identity of the function); without one,
// the source's content; always the arguments and the globals; never the
// timeout.
func TestFunctionKey(t *testing.T) {
	t.Setenv("MODAL_IMAGE_BUILDER_VERSION", "")
	b := uBuilder(t)
	base := uStubBase(t, b)
	src := filepath.Join(t.TempDir(), "app.py")
	write := func(s string) {
		if err := os.WriteFile(src, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	key := func(fn modal.Function, call modal.FunctionCall) string {
		t.Helper()
		p, err := b.Plan(context.Background(), FromID(base).RunFunction(fn, call).layers)
		if err != nil {
			t.Fatal(err)
		}
		k := p.Layers[1].Steps[0].Key
		if k == "" {
			t.Fatalf("no key: %+v", p.Layers[1])
		}
		return k
	}
	write("def f(): pass\n")
	withDef := modal.Function{Module: "app", Name: "f", Source: src, Definition: "def f(): pass"}
	bySource := modal.Function{Module: "app", Name: "f", Source: src}
	call := modal.FunctionCall{Args: []any{1}}
	d0, s0 := key(withDef, call), key(bySource, call)

	write("def f(): pass\ndef g(): pass\n") // another function of the module
	if k := key(withDef, call); k != d0 {
		t.Error("an edit outside the function's definition changed the key")
	}
	if k := key(bySource, call); k == s0 {
		t.Error("without a definition, an edit of the source did not change the key")
	}
	changed := withDef
	changed.Definition = "def f(): return 1"
	globals := withDef
	globals.Globals = []byte("x=2")
	for name, k := range map[string]string{
		"definition": key(changed, call),
		"arguments":  key(withDef, modal.FunctionCall{Args: []any{2}}),
		"globals":    key(globals, call),
	} {
		if k == d0 {
			t.Errorf("the %s did not change the key", name)
		}
	}
	if k := key(withDef, modal.FunctionCall{Args: []any{1}, Timeout: time.Minute}); k != d0 {
		t.Error("the timeout changed the key")
	}
}
