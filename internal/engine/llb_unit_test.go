package engine

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/internal/modal"
	"github.com/snapbuild/snapbuild/internal/testimage"
	"github.com/snapbuild/snapbuild/internal/worker"
)

// mapCache is a build.Cache of worker refs by key.
type mapCache map[digest.Digest][]build.Ref

func (c mapCache) Get(_ context.Context, k digest.Digest) ([]build.Ref, bool, error) {
	r, ok := c[k]
	return r, ok, nil
}

func (c mapCache) Put(_ context.Context, k digest.Digest, r []build.Ref) error {
	c[k] = r
	return nil
}

func refWith(layers int) *worker.Ref {
	return &worker.Ref{Layers: make([]ocispec.Descriptor, layers)}
}

// The history of a Dockerfile layer marks the instructions whose op made
// no layer (an empty diff) as empty, where BuildKit writes empty layers.
func TestLayerHistory(t *testing.T) {
	st := llb.Image("docker.io/library/debian:bookworm").
		Run(llb.Args([]string{"make"})).Root().
		File(llb.Mkdir("/app", 0o755, llb.WithParents(true))).
		Run(llb.Args([]string{"make", "install"})).Root()
	def, err := st.Marshal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	g, err := build.Load(def.ToPB())
	if err != nil {
		t.Fatal(err)
	}
	// keys: each vertex's own digest; the cache holds each op's layers.
	keys := map[digest.Digest]digest.Digest{}
	var chain []*build.Vertex
	for v := g.Target.Vertex; v != nil; {
		keys[v.Digest] = v.Digest
		chain = append(chain, v)
		if len(v.Inputs) == 0 {
			break
		}
		v = v.Inputs[0].Vertex
	}
	slices.Reverse(chain) // source, exec, mkdir, exec
	c := mapCache{}
	for i, n := range []int{1, 2, 2, 3} {
		c[chain[i].Digest] = []build.Ref{refWith(n)}
	}
	hist := []ocispec.History{
		{CreatedBy: "base"},
		{CreatedBy: "RUN make"},
		{CreatedBy: "ENV A=1", EmptyLayer: true},
		{CreatedBy: "WORKDIR /app"},
		{CreatedBy: "RUN make install"},
	}
	got := layerHistory(context.Background(), g, c, keys, hist, 3)
	var empty []string
	for _, h := range got {
		if h.EmptyLayer {
			empty = append(empty, h.CreatedBy)
		}
	}
	if want := []string{"ENV A=1", "WORKDIR /app"}; !slices.Equal(empty, want) {
		t.Errorf("empty entries %q, want %q", empty, want)
	}
	if hist[3].EmptyLayer {
		t.Error("layerHistory changed its argument")
	}

	// Without the ops' results, entries past the layer count are empty,
	// as BuildKit's exporter marks them.
	got = layerHistory(context.Background(), g, mapCache{}, keys, hist, 2)
	empty = nil
	for _, h := range got {
		if h.EmptyLayer {
			empty = append(empty, h.CreatedBy)
		}
	}
	if want := []string{"ENV A=1", "WORKDIR /app", "RUN make install"}; !slices.Equal(empty, want) {
		t.Errorf("fallback: empty entries %q, want %q", empty, want)
	}
}

// The build context the worker reads holds the files the layer selected,
// with their modes, and directories with the modes of the context's own.
func TestMaterializeContext(t *testing.T) {
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "app", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "app"), 0o750); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"app/bin/run": 0o755, "app/conf": 0o600, "other": 0o644} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(name), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(src, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("conf", filepath.Join(src, "app", "link")); err != nil {
		t.Fatal(err)
	}
	l := &modal.Layer{Method: "dockerfile_commands", Context: []modal.ContextInput{{Local: src, Remote: "/", Dir: true, Include: []string{"app"}}}}
	files, err := resolveContext(l)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := materializeContext(context.Background(), l, files, dst); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"app": os.ModeDir | 0o750, "app/bin": os.ModeDir | 0o755, "app/bin/run": 0o755, "app/conf": 0o600} {
		fi, err := os.Lstat(filepath.Join(dst, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), mode)
		}
	}
	if data, err := os.ReadFile(filepath.Join(dst, "app/bin/run")); err != nil || string(data) != "app/bin/run" {
		t.Errorf("app/bin/run: %q, %v", data, err)
	}
	if target, err := os.Readlink(filepath.Join(dst, "app/link")); err != nil || target != "conf" {
		t.Errorf("app/link: a symlink to %q (%v), want one to \"conf\"", target, err)
	}
	if _, err := os.Lstat(filepath.Join(dst, "other")); !os.IsNotExist(err) {
		t.Errorf("a file COPY does not name is in the context: %v", err)
	}
}

// llbSteps parses lines into the steps of a root Dockerfile layer.
func llbSteps(t *testing.T, lines ...string) *llbLayer {
	t.Helper()
	ins, err := modal.ParseCommands(lines)
	if err != nil {
		t.Fatal(err)
	}
	x := &llbLayer{l: &modal.Layer{Method: "from_dockerfile", Root: &modal.RootSpec{Dockerfile: true}}}
	for _, in := range ins {
		x.steps = append(x.steps, &llbStep{in: in, vtx: map[digest.Digest]bool{}})
	}
	return x
}

// The resolver's progress goes to the line that names the image: a FROM or
// a COPY --from, matched by name whatever the tag or registry.
func TestFromStep(t *testing.T) {
	x := llbSteps(t, "FROM debian:bookworm AS build", "COPY --from=tools/uv:0.4 /uv /uv", "FROM build", "COPY --from=bulder /x /x")
	for ref, line := range map[string]int{
		"debian:bookworm":                   1,
		"tools/uv:0.4":                      2,
		"bulder:latest":                     4,
		"registry.example/other@sha256:abc": 1, // no match: the first FROM
	} {
		if got := x.fromStep(ref).in.Line; got != line {
			t.Errorf("fromStep(%q) is line %d, want %d", ref, got, line)
		}
	}
}

// Stages the target does not need are not reported; the target stage is,
// even with no ops of its own.
func TestSkipUnused(t *testing.T) {
	x := llbSteps(t, "ARG V=1", "FROM base AS a", "RUN make", "FROM base AS unused", "RUN false", "FROM scratch AS final", "ENV X=1")
	x.steps[2].vtx["sha256:aa"] = true // RUN make is in the graph
	x.skipUnused("")
	var skipped []string
	for _, s := range x.steps {
		if s.skip {
			skipped = append(skipped, s.in.Text)
		}
	}
	if want := []string{"FROM base AS unused", "RUN false"}; !slices.Equal(skipped, want) {
		t.Errorf("skipped %q, want %q", skipped, want)
	}
	// --target a: the converter left b's ops out; a has none but is built.
	y := llbSteps(t, "FROM base AS a", "ENV A=1", "FROM base AS b", "RUN make")
	y.skipUnused("A")
	if !y.steps[2].skip || !y.steps[3].skip || y.steps[0].skip || y.steps[1].skip {
		t.Errorf("--target a: skip = %v %v %v %v", y.steps[0].skip, y.steps[1].skip, y.steps[2].skip, y.steps[3].skip)
	}
}

// A root layer whose own instructions change the image it starts FROM
// (micromamba's SHELL, ENV, RUN on a stored image) is what the next layer
// builds on, not the stored image.
func TestLayerOnChangedRoot(t *testing.T) {
	t.Setenv("MODAL_IMAGE_BUILDER_VERSION", "")
	b := uBuilder(t)
	base := uStubBase(t, b)
	root := &modal.Layer{Method: "from_id", Root: &modal.RootSpec{FromID: base},
		Commands: []string{"FROM " + base, "ENV ROOT=1", `SHELL ["/bin/bash", "-c"]`}}
	res, err := b.Build(context.Background(), []*modal.Layer{root, uLayer("env", "ENV NEXT=2")})
	if err != nil {
		t.Fatal(err)
	}
	env := res.Config.Config.Env
	if !slices.Contains(env, "ROOT=1") || !slices.Contains(env, "NEXT=2") {
		t.Errorf("env %q: want the root layer's ROOT=1 and the next layer's NEXT=2", env)
	}
}

// uStubBase records an image with no layers in b's store and returns its ID.
func uStubBase(t *testing.T, b *Engine) string {
	t.Helper()
	id, err := testimage.PutStub(b.store)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
