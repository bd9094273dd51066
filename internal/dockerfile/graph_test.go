package dockerfile

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// graph is a decoded pb.Definition: the ops reachable from the target, in
// the order a solver may run them (inputs first).
type graph struct {
	def   *pb.Definition
	ops   map[digest.Digest]*pb.Op
	order []digest.Digest // reachable from the terminal, inputs first
}

// loadGraph decodes def as a solver would: every entry of Def is a marshalled
// pb.Op named by the digest of its bytes; the last is the terminal op, whose
// only input is the target.
func loadGraph(t testing.TB, def *pb.Definition) *graph {
	t.Helper()
	if def == nil || len(def.Def) == 0 {
		t.Fatal("definition is empty")
	}
	g := &graph{def: def, ops: map[digest.Digest]*pb.Op{}}
	var last digest.Digest
	for _, dt := range def.Def {
		op := &pb.Op{}
		if err := op.Unmarshal(dt); err != nil {
			t.Fatalf("decoding op: %v", err)
		}
		last = digest.FromBytes(dt)
		g.ops[last] = op
	}
	term := g.ops[last]
	if term.Op != nil || len(term.Inputs) != 1 {
		t.Fatalf("last op is not a terminal with one input: %v", protojson.Format(term))
	}
	seen := map[digest.Digest]bool{}
	var visit func(digest.Digest)
	visit = func(d digest.Digest) {
		if seen[d] {
			return
		}
		seen[d] = true
		op, ok := g.ops[d]
		if !ok {
			t.Fatalf("op %s is an input but not in the definition", d)
		}
		for _, in := range op.Inputs {
			visit(digest.Digest(in.Digest))
		}
		g.order = append(g.order, d)
	}
	visit(digest.Digest(term.Inputs[0].Digest))
	return g
}

// name is the op's progress name ("[stage-1 2/3] RUN make").
func (g *graph) name(d digest.Digest) string {
	if m := g.def.Metadata[string(d)]; m != nil {
		return m.Description["llb.customname"]
	}
	return ""
}

// execs returns the reachable exec ops.
func (g *graph) execs() []*pb.ExecOp {
	var out []*pb.ExecOp
	for _, d := range g.order {
		if e := g.ops[d].GetExec(); e != nil {
			out = append(out, e)
		}
	}
	return out
}

// execRunning returns the one reachable exec op whose last argument contains
// s, failing the test if there is not exactly one.
func (g *graph) execRunning(t testing.TB, s string) *pb.ExecOp {
	t.Helper()
	var found []*pb.ExecOp
	for _, e := range g.execs() {
		args := e.GetMeta().GetArgs()
		if len(args) > 0 && strings.Contains(args[len(args)-1], s) {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d exec ops run %q, want 1; graph:\n%s", len(found), s, g)
	}
	return found[0]
}

// fileActions returns the actions of the reachable file ops, with the digest
// of the op holding each.
func (g *graph) fileActions() []fileAction {
	var out []fileAction
	for _, d := range g.order {
		if f := g.ops[d].GetFile(); f != nil {
			for _, a := range f.Actions {
				out = append(out, fileAction{op: d, FileAction: a})
			}
		}
	}
	return out
}

type fileAction struct {
	op digest.Digest
	*pb.FileAction
}

// copies returns the reachable copy actions whose destination is dest.
func (g *graph) copiesTo(dest string) []*pb.FileActionCopy {
	var out []*pb.FileActionCopy
	for _, a := range g.fileActions() {
		if c := a.GetCopy(); c != nil && c.Dest == dest {
			out = append(out, c)
		}
	}
	return out
}

// sources returns the identifiers of the reachable source ops.
func (g *graph) sources() []string {
	var out []string
	for _, d := range g.order {
		if s := g.ops[d].GetSource(); s != nil {
			out = append(out, s.Identifier)
		}
	}
	return out
}

// sourceOp returns the reachable source op with the given identifier.
func (g *graph) sourceOp(t testing.TB, id string) *pb.SourceOp {
	t.Helper()
	for _, d := range g.order {
		if s := g.ops[d].GetSource(); s != nil && s.Identifier == id {
			return s
		}
	}
	t.Fatalf("no source op %q; sources: %q", id, g.sources())
	return nil
}

// count returns how many reachable ops are of the given kind.
func (g *graph) count(kind string) int {
	n := 0
	for _, d := range g.order {
		if opKind(g.ops[d]) == kind {
			n++
		}
	}
	return n
}

func opKind(op *pb.Op) string {
	switch op.Op.(type) {
	case *pb.Op_Exec:
		return "exec"
	case *pb.Op_Source:
		return "source"
	case *pb.Op_File:
		return "file"
	case *pb.Op_Merge:
		return "merge"
	case *pb.Op_Diff:
		return "diff"
	case *pb.Op_Build:
		return "build"
	}
	return "terminal"
}

// String prints the reachable ops, one a line, for failure messages.
func (g *graph) String() string {
	var b strings.Builder
	for _, d := range g.order {
		fmt.Fprintf(&b, "  %s %-6s %q %s\n", d.Encoded()[:8], opKind(g.ops[d]), g.name(d), protojson.MarshalOptions{}.Format(g.ops[d]))
	}
	return b.String()
}

// env returns the value of key in an exec op's environment.
func env(e *pb.ExecOp, key string) (string, bool) {
	for _, kv := range e.GetMeta().GetEnv() {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v, true
		}
	}
	return "", false
}

// fakeImage is an image the fake resolver knows: its config blob, as a
// registry serves it, and the digest of a manifest that names that config.
type fakeImage struct {
	digest digest.Digest
	config []byte
}

// fakeResolver resolves references from testdata configs and records every
// call. It is safe for concurrent use, as MetaResolver requires.
type fakeResolver struct {
	images map[string]fakeImage

	mu    sync.Mutex
	calls []resolveCall
}

type resolveCall struct {
	ref      string
	platform ocispec.Platform
}

// newFakeResolver knows the testdata images under the references the
// converter passes (normalized, with a tag, or pinned by digest).
func newFakeResolver(t testing.TB) *fakeResolver {
	t.Helper()
	fr := &fakeResolver{images: map[string]fakeImage{}}
	for ref, file := range map[string]string{
		"docker.io/library/debian:bookworm": "debian-bookworm.json",
		"docker.io/library/alpine:3.20":     "alpine-3.20.json",
		"localhost:5000/app/base:1":         "app-base.json",
		"localhost:5000/empty:1":            "empty.json",
	} {
		img := loadImage(t, file)
		fr.images[ref] = img
		name, _, _ := strings.Cut(ref[strings.LastIndex(ref, "/"):], ":")
		fr.images[ref[:strings.LastIndex(ref, "/")]+name+"@"+img.digest.String()] = img
	}
	return fr
}

// loadImage reads a config from testdata and computes the digest of an
// image manifest that references it and its layers.
func loadImage(t testing.TB, file string) fakeImage {
	t.Helper()
	config, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	var c ocispec.Image
	if err := json.Unmarshal(config, &c); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))},
	}
	m.SchemaVersion = 2
	for _, id := range c.RootFS.DiffIDs {
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerZstd, Digest: id, Size: 1})
	}
	mdt, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return fakeImage{digest: digest.FromBytes(mdt), config: config}
}

func (fr *fakeResolver) ResolveImageConfig(ctx context.Context, ref string, platform ocispec.Platform) (digest.Digest, []byte, error) {
	fr.mu.Lock()
	fr.calls = append(fr.calls, resolveCall{ref: ref, platform: platform})
	fr.mu.Unlock()
	img, ok := fr.images[ref]
	if !ok {
		return "", nil, fmt.Errorf("image %s: %w: pull it first", ref, errNotInStore)
	}
	return img.digest, img.config, nil
}

var errNotInStore = fmt.Errorf("not in the store")

// refs returns the references resolved, in call order.
func (fr *fakeResolver) refs() []string {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	var out []string
	for _, c := range fr.calls {
		out = append(out, c.ref)
	}
	return out
}

func (fr *fakeResolver) digest(ref string) digest.Digest { return fr.images[ref].digest }

var host = ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
