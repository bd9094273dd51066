package build

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
)

// marshal returns st's definition, as a front end would hand it over.
func marshal(t *testing.T, st llb.State, opts ...llb.ConstraintsOpt) *pb.Definition {
	t.Helper()
	def, err := st.Marshal(context.Background(), opts...)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return def.ToPB()
}

// opBytes marshals op and returns its bytes and digest.
func opBytes(t *testing.T, op *pb.Op) ([]byte, digest.Digest) {
	t.Helper()
	dt, err := op.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return dt, digest.FromBytes(dt)
}

// handDef returns a definition of ops, the last op's output 0 as target.
func handDef(t *testing.T, ops ...*pb.Op) *pb.Definition {
	t.Helper()
	def := &pb.Definition{}
	var last digest.Digest
	for _, op := range ops {
		dt, d := opBytes(t, op)
		def.Def = append(def.Def, dt)
		last = d
	}
	term, _ := opBytes(t, &pb.Op{Inputs: []*pb.Input{{Digest: string(last)}}})
	def.Def = append(def.Def, term)
	return def
}

func srcOp(id string) *pb.Op {
	return &pb.Op{Op: &pb.Op_Source{Source: &pb.SourceOp{Identifier: id}}}
}

func digestOf(t *testing.T, op *pb.Op) string {
	_, d := opBytes(t, op)
	return string(d)
}

func TestLoad(t *testing.T) {
	base := llb.Image("docker.io/library/alpine:3.20")
	built := base.Run(llb.Shlex("sh -c 'make'"), llb.WithCustomName("[build 1/2] RUN make")).Root()
	final := llb.Scratch().File(llb.Copy(built, "/out", "/app"))
	g, err := Load(marshal(t, final))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if g.Len() != 3 {
		t.Errorf("Len() = %d, want 3 (source, exec, file)", g.Len())
	}
	tv := g.Target.Vertex
	if tv == nil || tv.Kind != KindFile || g.Target.Output != 0 {
		t.Fatalf("target = %+v, want output 0 of the file op", g.Target)
	}
	if tv.Name != "copy /out /app" {
		t.Errorf("file op name = %q, want %q", tv.Name, "copy /out /app")
	}
	ex := tv.Inputs[0].Vertex
	if ex.Kind != KindExec || ex.Name != "[build 1/2] RUN make" || ex.Outputs != 1 {
		t.Errorf("exec vertex = %s with %d outputs, want the custom name and 1 output", ex, ex.Outputs)
	}
	src := ex.Inputs[0].Vertex
	if src.Kind != KindSource || src.Name != "docker-image://docker.io/library/alpine:3.20" {
		t.Errorf("source vertex = %s", src)
	}
	if g.Vertex(src.Digest) != src {
		t.Errorf("Vertex(%s) does not return the source", src.Digest)
	}
	// The digest is BuildKit's: sha256 of the op's bytes in the definition.
	for _, dt := range marshal(t, final).Def {
		if v := g.Vertex(digest.FromBytes(dt)); v == nil && len(dt) > 0 {
			var op pb.Op
			_ = op.Unmarshal(dt)
			if op.Op != nil {
				t.Errorf("op %s of the definition is not a vertex", digest.FromBytes(dt))
			}
		}
	}
}

func TestLoadScratchTarget(t *testing.T) {
	g, err := Load(marshal(t, llb.Scratch()))
	if err != nil {
		t.Fatalf("Load(scratch): %v", err)
	}
	if g.Target.Vertex != nil {
		t.Errorf("target of scratch = %s, want none", g.Target.Vertex)
	}
}

func TestLoadNames(t *testing.T) {
	a := llb.Image("a").Run(llb.Args([]string{"/bin/true", "x"})).Root()
	b := llb.Image("b")
	tests := []struct {
		st   llb.State
		want string
	}{
		{llb.Merge([]llb.State{a, b}), "merge (/bin/true x, docker-image://docker.io/library/b:latest)"},
		{llb.Diff(b, a), "diff (docker-image://docker.io/library/b:latest) -> (/bin/true x)"},
		{b.File(llb.Mkdir("/d", 0o755).Mkfile("/d/f", 0o644, []byte("x")).Rm("/e")), "mkdir /d, mkfile /d/f, rm /e"},
	}
	for _, tc := range tests {
		g, err := Load(marshal(t, tc.st))
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if got := g.Target.Vertex.Name; got != tc.want {
			t.Errorf("Name = %q, want %q", got, tc.want)
		}
	}
}

func TestLoadMultipleOutputs(t *testing.T) {
	es := llb.Image("a").Run(llb.Shlex("true"))
	out := es.AddMount("/out", llb.Scratch())
	g, err := Load(marshal(t, out))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if g.Target.Output != 1 || g.Target.Vertex.Outputs != 2 {
		t.Errorf("target = output %d of %d, want output 1 of 2", g.Target.Output, g.Target.Vertex.Outputs)
	}
}

// TestLoadSecretMount: llb writes secret and ssh mounts with Output 0;
// they make no output, as in BuildKit.
func TestLoadSecretMount(t *testing.T) {
	st := llb.Image("a").Run(llb.Shlex("true"), llb.AddSecret("/run/secrets/tok", llb.SecretID("tok")), llb.AddSSHSocket()).Root()
	g, err := Load(marshal(t, st))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if g.Target.Vertex.Outputs != 1 {
		t.Errorf("outputs = %d, want 1 (the root mount)", g.Target.Vertex.Outputs)
	}
}

func TestLoadInvalid(t *testing.T) {
	img := srcOp("docker-image://docker.io/library/alpine:latest")
	imgD := digestOf(t, img)
	exec := func(mounts ...*pb.Mount) *pb.Op {
		return &pb.Op{
			Inputs: []*pb.Input{{Digest: imgD}},
			Op:     &pb.Op_Exec{Exec: &pb.ExecOp{Meta: &pb.Meta{Args: []string{"true"}}, Mounts: mounts}},
		}
	}
	root := &pb.Mount{Dest: "/", Input: 0, Output: 0}
	term := func(d string, idx int64) []byte {
		dt, _ := opBytes(t, &pb.Op{Inputs: []*pb.Input{{Digest: d, Index: idx}}})
		return dt
	}
	raw := func(ops ...*pb.Op) [][]byte {
		var out [][]byte
		for _, op := range ops {
			dt, _ := opBytes(t, op)
			out = append(out, dt)
		}
		return out
	}
	imgBytes, _ := opBytes(t, img)

	tests := []struct {
		name string
		def  *pb.Definition
		want string
	}{
		{"nil", nil, "the definition is nil"},
		{"undecodable", &pb.Definition{Def: [][]byte{{0xff, 0xff, 0xff}}}, "op 1 of 1 cannot be decoded"},
		{"last op not terminal", &pb.Definition{Def: [][]byte{imgBytes}}, "the last op is a source op"},
		{"terminal with two inputs", &pb.Definition{Def: append(raw(img), raw(&pb.Op{Inputs: []*pb.Input{{Digest: imgD}, {Digest: imgD}}})...)}, "the terminal op"},
		{"missing input", handDef(t, &pb.Op{
			Inputs: []*pb.Input{{Digest: string(digest.FromString("gone"))}},
			Op:     &pb.Op_Exec{Exec: &pb.ExecOp{Meta: &pb.Meta{Args: []string{"true"}}, Mounts: []*pb.Mount{root}}},
		}), "input 0: names op sha256:"},
		{"missing target", &pb.Definition{Def: append(raw(img), term(string(digest.FromString("gone")), 0))}, "the target: names op"},
		{"target output out of range", &pb.Definition{Def: append(raw(img), term(imgD, 1))}, "names output 1 of source op"},
		{"input output out of range", handDef(t, img, &pb.Op{
			Inputs: []*pb.Input{{Digest: imgD, Index: 3}},
			Op:     &pb.Op_Exec{Exec: &pb.ExecOp{Meta: &pb.Meta{Args: []string{"true"}}, Mounts: []*pb.Mount{root}}},
		}), "names output 3 of source op"},
		{"exec without args", handDef(t, img, &pb.Op{
			Inputs: []*pb.Input{{Digest: imgD}},
			Op:     &pb.Op_Exec{Exec: &pb.ExecOp{Meta: &pb.Meta{}, Mounts: []*pb.Mount{root}}},
		}), "the exec has no process args"},
		{"exec without root mount", handDef(t, img, exec(&pb.Mount{Dest: "/data", Input: 0, Output: 0})), "no root mount"},
		{"mount input out of range", handDef(t, img, exec(&pb.Mount{Dest: "/", Input: 2, Output: 0})), "mount 0 (/) names input 2; the op has 1 inputs"},
		{"mount outputs not dense", handDef(t, img, exec(&pb.Mount{Dest: "/", Input: 0, Output: 1})), "mount outputs must be numbered 0 to 0; found 1"},
		{"mount output twice", handDef(t, img, exec(&pb.Mount{Dest: "/", Input: 0, Output: 0}, &pb.Mount{Dest: "/x", Input: -1, Output: 0})), "output 0 is made twice"},
		{"file op without actions", handDef(t, img, &pb.Op{Inputs: []*pb.Input{{Digest: imgD}}, Op: &pb.Op_File{File: &pb.FileOp{}}}), "the file op has no actions"},
		{"file action reads a later action", handDef(t, img, &pb.Op{
			Inputs: []*pb.Input{{Digest: imgD}},
			Op: &pb.Op_File{File: &pb.FileOp{Actions: []*pb.FileAction{
				{Input: 1, SecondaryInput: -1, Output: 0, Action: &pb.FileAction_Mkdir{Mkdir: &pb.FileActionMkDir{Path: "/a"}}},
			}}},
		}), "action 0's input names input 1"},
		{"merge input count", handDef(t, img, &pb.Op{
			Inputs: []*pb.Input{{Digest: imgD}},
			Op:     &pb.Op_Merge{Merge: &pb.MergeOp{Inputs: []*pb.MergeInput{{Input: 0}, {Input: 0}}}},
		}), "the merge lists 2 inputs; the op has 1"},
		{"diff side out of range", handDef(t, img, &pb.Op{
			Inputs: []*pb.Input{{Digest: imgD}},
			Op:     &pb.Op_Diff{Diff: &pb.DiffOp{Lower: &pb.LowerDiffInput{Input: 0}, Upper: &pb.UpperDiffInput{Input: 4}}},
		}), "the upper side names input 4"},
		{"source with inputs", handDef(t, img, &pb.Op{Inputs: []*pb.Input{{Digest: imgD}}, Op: &pb.Op_Source{Source: &pb.SourceOp{Identifier: "local://x"}}}), "a source takes no inputs"},
		{"source without identifier", handDef(t, srcOp("")), "the source has no identifier"},
		{"build op", handDef(t, img, &pb.Op{Inputs: []*pb.Input{{Digest: imgD}}, Op: &pb.Op_Build{Build: &pb.BuildOp{}}}), "build ops (a nested definition solved by a frontend) are not supported"},
		{"op without kind before the end", &pb.Definition{Def: append(raw(&pb.Op{}, img), term(imgD, 0))}, "the op has no kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.def)
			if err == nil {
				t.Fatalf("Load succeeded, want an error containing %q", tc.want)
			}
			if !errors.Is(err, ErrInvalidDefinition) {
				t.Errorf("Load error %q does not wrap ErrInvalidDefinition", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestLinkCycle feeds link ops whose inputs form a cycle. A marshalled
// definition cannot hold one (an op's digest covers its inputs' digests),
// so the digests here are made up.
func TestLinkCycle(t *testing.T) {
	a, b, c := digest.FromString("a"), digest.FromString("b"), digest.FromString("c")
	execOn := func(in digest.Digest) *pb.Op {
		return &pb.Op{
			Inputs: []*pb.Input{{Digest: string(in)}},
			Op:     &pb.Op_Exec{Exec: &pb.ExecOp{Meta: &pb.Meta{Args: []string{"true"}}, Mounts: []*pb.Mount{{Dest: "/", Output: 0}}}},
		}
	}
	ops := []rawOp{
		{dgst: a, op: execOn(b)},
		{dgst: b, op: execOn(c)},
		{dgst: c, op: execOn(a)},
	}
	_, err := link(ops, &pb.Input{Digest: string(a)})
	if err == nil {
		t.Fatal("link of a cycle succeeded")
	}
	if !errors.Is(err, ErrInvalidDefinition) || !strings.Contains(err.Error(), "the ops form a cycle: ") {
		t.Errorf("link error = %q, want a cycle error wrapping ErrInvalidDefinition", err)
	}
	for _, d := range []digest.Digest{a, b, c} {
		if !strings.Contains(err.Error(), short(d)) {
			t.Errorf("cycle error %q does not name %s", err, short(d))
		}
	}

	// A self-loop too.
	_, err = link([]rawOp{{dgst: a, op: execOn(a)}}, &pb.Input{Digest: string(a)})
	if err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("link of a self-loop: err = %v, want a cycle error", err)
	}
}

func TestRewrite(t *testing.T) {
	st := llb.Image("docker.io/library/alpine:3.20").
		Run(llb.Args([]string{"make"}), llb.WithCustomName("RUN make")).Root().
		File(llb.Mkfile("/a", 0o644, []byte("a")))
	def := marshal(t, st)
	before, err := Load(def)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	out, err := Rewrite(def, func(op *pb.Op, md *pb.OpMetadata) error {
		calls++
		md.IgnoreCache = true
		if e := op.GetExec(); e != nil {
			e.Meta.Env = append(e.Meta.Env, "SITE=1")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 3 {
		t.Errorf("fn called %d times, want 3 (source, exec, file; not the terminal)", calls)
	}
	g, err := Load(out)
	if err != nil {
		t.Fatalf("Load(rewritten): %v", err)
	}
	file := g.Target.Vertex
	exec := file.Inputs[0].Vertex
	if exec.Kind != KindExec || !slices.Contains(exec.Op.GetExec().Meta.Env, "SITE=1") {
		t.Errorf("the exec op was not edited: %v", exec.Op)
	}
	if exec.Name != "RUN make" || !file.Metadata.IgnoreCache || !exec.Inputs[0].Vertex.Metadata.IgnoreCache {
		t.Errorf("metadata not carried or edited: %q %v", exec.Name, file.Metadata)
	}
	if exec.Digest == before.Target.Vertex.Inputs[0].Vertex.Digest {
		t.Error("the edited exec op kept its digest")
	}
	// The source op is unchanged: same digest.
	if exec.Inputs[0].Vertex.Digest != before.Target.Vertex.Inputs[0].Vertex.Inputs[0].Vertex.Digest {
		t.Error("an op whose bytes did not change was renamed")
	}
	// def itself is untouched.
	if again, _ := Load(def); again.Target.Vertex.Digest != before.Target.Vertex.Digest {
		t.Error("Rewrite changed its input")
	}
	wantErr := errors.New("refused")
	if _, err := Rewrite(def, func(*pb.Op, *pb.OpMetadata) error { return wantErr }); !errors.Is(err, wantErr) {
		t.Errorf("fn's error: got %v", err)
	}
}
