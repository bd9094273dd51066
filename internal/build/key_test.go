package build

import (
	"context"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// targetKey returns the cache key of st's target under a solver on w.
func targetKey(t *testing.T, w Worker, st llb.State, opts ...Option) digest.Digest {
	t.Helper()
	s, err := NewSolver(w, opts...)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Load(marshal(t, st))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	k, err := s.Key(context.Background(), g)
	if err != nil {
		t.Fatalf("Key: %v", err)
	}
	if err := k.Validate(); err != nil {
		t.Fatalf("Key = %q: %v", k, err)
	}
	return k
}

// TestKeySensitivity changes one thing of a build and checks whether the
// target's cache key changes: everything that can change the files must,
// names and progress metadata must not.
func TestKeySensitivity(t *testing.T) {
	alpine := llb.Image("docker.io/library/alpine:3.20")
	run := func(base llb.State, opts ...llb.RunOption) llb.State {
		return base.Run(append([]llb.RunOption{llb.Shlex("make all")}, opts...)...).Root()
	}
	file := func(base llb.State) llb.State {
		return base.File(llb.Mkfile("/etc/motd", 0o644, []byte("hi")))
	}
	base := file(run(alpine))
	ctxSrc := llb.Local("context")
	twoOut := alpine.Run(llb.Shlex("make all"))
	twoOut.AddMount("/out", llb.Scratch())

	tests := []struct {
		name    string
		a, b    llb.State
		aOpts   []Option
		bOpts   []Option
		changed bool
	}{
		{name: "same definition twice", a: base, b: file(run(alpine))},

		// exec
		{name: "exec arg", a: base, b: file(alpine.Run(llb.Shlex("make install")).Root()), changed: true},
		{name: "exec env", a: base, b: file(run(alpine.AddEnv("CC", "clang"))), changed: true},
		{name: "exec cwd", a: base, b: file(run(alpine.Dir("/src"))), changed: true},
		{name: "exec user", a: base, b: file(run(alpine.User("nobody"))), changed: true},
		{name: "exec bind mount", a: base, b: file(run(alpine, llb.AddMount("/src", llb.Image("busybox"), llb.Readonly))), changed: true},
		{name: "exec cache mount", a: base, b: file(run(alpine, llb.AddMount("/root/.cache", llb.Scratch(), llb.AsPersistentCacheDir("pip", llb.CacheMountShared)))), changed: true},
		{name: "exec tmpfs mount", a: base, b: file(run(alpine, llb.AddMount("/tmp", llb.Scratch(), llb.Tmpfs()))), changed: true},
		{name: "exec secret env", a: base, b: file(run(alpine, llb.AddSecret("TOKEN", llb.SecretID("tok"), llb.SecretAsEnv(true)))), changed: true},
		{name: "exec network", a: base, b: file(run(alpine, llb.Network(llb.NetModeNone))), changed: true},
		{name: "exec CDI device", a: base, b: file(run(alpine, llb.AddCDIDevice(llb.CDIDeviceName("nvidia.com/gpu=all")))), changed: true},
		{name: "exec readonly mount of the same input", a: file(run(alpine, llb.AddMount("/src", ctxSrc))), b: file(run(alpine, llb.AddMount("/src", ctxSrc, llb.Readonly))), changed: true},

		// file
		{name: "file op path", a: base, b: run(alpine).File(llb.Mkfile("/etc/issue", 0o644, []byte("hi"))), changed: true},
		{name: "file op content", a: base, b: run(alpine).File(llb.Mkfile("/etc/motd", 0o644, []byte("ho"))), changed: true},
		{name: "file op mode", a: base, b: run(alpine).File(llb.Mkfile("/etc/motd", 0o600, []byte("hi"))), changed: true},
		{name: "file op owner", a: base, b: run(alpine).File(llb.Mkfile("/etc/motd", 0o644, []byte("hi"), llb.WithUIDGID(1000, 1000))), changed: true},
		{name: "copy source path", a: alpine.File(llb.Copy(ctxSrc, "a", "/a")), b: alpine.File(llb.Copy(ctxSrc, "b", "/a")), changed: true},
		{name: "copy exclude pattern", a: alpine.File(llb.Copy(ctxSrc, ".", "/a")), b: alpine.File(llb.Copy(ctxSrc, ".", "/a", &llb.CopyInfo{ExcludePatterns: []string{"*.o"}})), changed: true},

		// source
		{name: "source ref", a: base, b: file(run(llb.Image("docker.io/library/alpine:3.21"))), changed: true},
		{name: "source pinned digest", a: llb.Image("alpine@sha256:" + sixtyFour("1")), b: llb.Image("alpine@sha256:" + sixtyFour("2")), changed: true},
		{name: "local source include pattern", a: llb.Local("context"), b: llb.Local("context", llb.IncludePatterns([]string{"src"})), changed: true},

		// inputs
		{name: "an input three ops down", a: base, b: file(run(alpine.File(llb.Mkdir("/src", 0o755)))), changed: true},
		{name: "which output of an input", a: twoOut.Root().File(llb.Mkdir("/x", 0o755)), b: twoOut.GetMount("/out").File(llb.Mkdir("/x", 0o755)), changed: true},
		{name: "local source marshalled twice (random local.unique)", a: llb.Local("context"), b: llb.Local("context")},

		// metadata: not in the key
		{name: "custom name", a: base, b: file(alpine.Run(llb.Shlex("make all"), llb.WithCustomName("[1/2] RUN make all")).Root())},
		{name: "description", a: base, b: file(alpine.Run(llb.Shlex("make all"), llb.WithDescription(map[string]string{"com.example.note": "x"})).Root())},
		{name: "progress group", a: base, b: file(alpine.Run(llb.Shlex("make all"), llb.ProgressGroup("g", "group", false)).Root())},
		{name: "ignore-cache flag", a: base, b: file(alpine.Run(llb.Shlex("make all"), llb.IgnoreCache).Root())},
		{name: "export-cache flag", a: base, b: file(alpine.Run(llb.Shlex("make all"), llb.WithExportCache()).Root())},
		{name: "resource limits", a: base, b: file(alpine.Run(llb.Shlex("make all"), llb.MemoryLimit(1<<30)).Root())},

		// solver settings
		{name: "key salt", a: base, b: base, bOpts: []Option{WithKeySalt("epoch=1700000000")}, changed: true},
		{name: "solver platform, ops without one", a: llb.Scratch().File(llb.Mkdir("/a", 0o755)), b: llb.Scratch().File(llb.Mkdir("/a", 0o755)),
			aOpts: []Option{WithPlatform("linux", "amd64", "")}, bOpts: []Option{WithPlatform("linux", "arm64", "")}, changed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ka := targetKey(t, newFakeWorker(), tc.a, tc.aOpts...)
			kb := targetKey(t, newFakeWorker(), tc.b, tc.bOpts...)
			if changed := ka != kb; changed != tc.changed {
				t.Errorf("key changed = %v (%s vs %s), want %v", changed, ka, kb, tc.changed)
			}
		})
	}
}

// TestKeyLocalContent: a local source's key follows the content checksum
// the Worker reports, and so do the keys of everything above it.
func TestKeyLocalContent(t *testing.T) {
	st := llb.Image("alpine").File(llb.Copy(llb.Local("context"), "/", "/app")).Run(llb.Shlex("make")).Root()
	w1, w2, w3 := newFakeWorker(), newFakeWorker(), newFakeWorker()
	w1.content["local://context"] = digest.FromString("v1")
	w2.content["local://context"] = digest.FromString("v2")
	w3.content["local://context"] = digest.FromString("v1")
	k1, k2, k3 := targetKey(t, w1, st), targetKey(t, w2, st), targetKey(t, w3, st)
	if k1 == k2 {
		t.Errorf("edited local content: key stayed %s", k1)
	}
	if k1 != k3 {
		t.Errorf("same local content: keys %s and %s differ", k1, k3)
	}
}

// TestKeyOpPlatform: an op's own platform is in its key.
func TestKeyOpPlatform(t *testing.T) {
	amd := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	v2 := ocispecs.Platform{OS: "linux", Architecture: "amd64", Variant: "v2"}
	ka := targetKey(t, newFakeWorker(), llb.Image("alpine", llb.Platform(amd)), WithPlatform("linux", "amd64", ""))
	kb := targetKey(t, newFakeWorker(), llb.Image("alpine", llb.Platform(v2)), WithPlatform("linux", "amd64", ""))
	if ka == kb {
		t.Errorf("variant v2 and none: same key %s", ka)
	}
}

// TestKeySchema pins the encoding of one vertex's key as KeyVersion
// documents it. A change to the schema fails here: change KeyVersion with
// it, and this expectation.
func TestKeySchema(t *testing.T) {
	op := &pb.Op{Op: &pb.Op_Source{Source: &pb.SourceOp{Identifier: "docker-image://docker.io/library/alpine:3.20"}}}
	v := &Vertex{Kind: KindSource, Op: op, Metadata: &pb.OpMetadata{}}
	k, err := vertexKey(v, nil, "", "linux/amd64", "")
	if err != nil {
		t.Fatal(err)
	}
	opDigest := digest.FromBytes(mustMarshal(t, op))
	want := digest.FromString(`{"v":"snapbuild-llb/2","kind":"source","op":"` + string(opDigest) + `","platform":"linux/amd64","inputs":[],"content":"","salt":""}`)
	if k != want {
		t.Errorf("vertexKey = %s, want %s (the documented schema)", k, want)
	}
	if _, err := vertexKey(v, []digest.Digest{"sha256:x"}, "", "linux/amd64", ""); err == nil {
		t.Error("vertexKey with more input keys than inputs succeeded")
	}
}

func mustMarshal(t *testing.T, op *pb.Op) []byte {
	dt, err := op.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return dt
}

func sixtyFour(c string) string {
	s := ""
	for len(s) < 64 {
		s += c
	}
	return s
}

// selectingWorker is a fakeWorker that is a Selector: the selection key of
// a source's paths comes from sel, by the paths joined with ",".
type selectingWorker struct {
	*fakeWorker
	sel map[string]digest.Digest
}

func (w selectingWorker) SelectionKey(ctx context.Context, op *pb.SourceOp, paths []string) (digest.Digest, error) {
	return w.sel[op.Identifier+" "+strings.Join(paths, ",")], nil
}

// TestKeySelection: a copy from a local source is keyed by what it selects
// when the Worker is a Selector, so an edit elsewhere in the context keeps
// it and what is built on it (COPY requirements.txt, RUN pip install)
// cached; an op that builds on the source itself keeps the source's key.
func TestKeySelection(t *testing.T) {
	ctxSrc := llb.Local("context")
	deps := llb.Image("alpine").File(llb.Copy(ctxSrc, "requirements.txt", "/app/")).Run(llb.Shlex("pip install")).Root()
	all := deps.File(llb.Copy(ctxSrc, ".", "/app/"))
	onSource := ctxSrc.File(llb.Mkdir("/x", 0o755))
	worker := func(content, reqs string) selectingWorker {
		w := selectingWorker{newFakeWorker(), map[string]digest.Digest{}}
		w.content["local://context"] = digest.FromString(content)
		if reqs != "" {
			w.sel["local://context /requirements.txt"] = digest.FromString(reqs)
		}
		return w
	}
	for _, tc := range []struct {
		name    string
		st      llb.State
		a, b    Worker
		changed bool
	}{
		{"edit elsewhere: the copy of requirements.txt and the RUN keep their key", deps, worker("v1", "r1"), worker("v2", "r1"), false},
		{"edit of requirements.txt", deps, worker("v1", "r1"), worker("v1", "r2"), true},
		{"edit elsewhere: COPY . changes", all, worker("v1", "r1"), worker("v2", "r1"), true},
		{"no selection key: the source's key", deps, worker("v1", ""), worker("v2", ""), true},
		{"not a Selector: the source's key", deps, worker("v1", "r1").fakeWorker, worker("v2", "r1").fakeWorker, true},
		{"an op on the source itself: the source's key", onSource, worker("v1", "r1"), worker("v2", "r1"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ka, kb := targetKey(t, tc.a, tc.st), targetKey(t, tc.b, tc.st)
			if changed := ka != kb; changed != tc.changed {
				t.Errorf("key changed = %v (%s vs %s), want %v", changed, ka, kb, tc.changed)
			}
		})
	}
	// The selection key differs from the source's key: a copy keyed by
	// selection never shares a key with one keyed by the whole source.
	if targetKey(t, worker("v1", "r1"), deps) == targetKey(t, worker("v1", "").fakeWorker, deps) {
		t.Error("selection key and source key give the same key")
	}
}
