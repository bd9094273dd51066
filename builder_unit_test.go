package snapbuild

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/internal/modal"
	"github.com/snapbuild/snapbuild/internal/store"
	"github.com/snapbuild/snapbuild/snapshot"
)

// ---- cache keys ----

func uKeyState() *buildState {
	return &buildState{
		id:     "im-0000000000000000000000",
		chain:  digest.FromString("parent chain"),
		config: ocispec.ImageConfig{Env: []string{"PATH=/usr/bin", "LANG=C.UTF-8"}, WorkingDir: "/w", User: "app"},
		shell:  []string{"/bin/bash", "-c"},
	}
}

func uKeyLayer() *modal.Layer {
	return &modal.Layer{Method: "run_commands", Commands: []string{"FROM base", "RUN echo hi"}, BuildEnv: map[string]string{"TOKEN": "secret-1"}}
}

func TestStepKeyStableAndSensitive(t *testing.T) {
	in := instruction{text: "RUN echo hi"}
	k0 := stepKey(uKeyState(), uKeyLayer(), in, "inputs", DefaultEpoch)
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(k0) {
		t.Fatalf("key %q is not 64 hex digits", k0)
	}
	if k := stepKey(uKeyState(), uKeyLayer(), in, "inputs", DefaultEpoch); k != k0 {
		t.Fatalf("key not stable: %s vs %s", k, k0)
	}

	changes := map[string]func(st *buildState, l *modal.Layer, in *instruction, inputs *string){
		"parent chain": func(st *buildState, _ *modal.Layer, _ *instruction, _ *string) { st.chain = digest.FromString("other") },
		"no parent":    func(st *buildState, _ *modal.Layer, _ *instruction, _ *string) { st.chain = "" },
		"instruction":  func(_ *buildState, _ *modal.Layer, in *instruction, _ *string) { in.text = "RUN echo  hi" },
		"env value":    func(st *buildState, _ *modal.Layer, _ *instruction, _ *string) { st.config.Env[1] = "LANG=C" },
		"env added": func(st *buildState, _ *modal.Layer, _ *instruction, _ *string) {
			st.config.Env = append(st.config.Env, "X=1")
		},
		"env order":      func(st *buildState, _ *modal.Layer, _ *instruction, _ *string) { slices.Reverse(st.config.Env) },
		"workdir":        func(st *buildState, _ *modal.Layer, _ *instruction, _ *string) { st.config.WorkingDir = "/" },
		"shell":          func(st *buildState, _ *modal.Layer, _ *instruction, _ *string) { st.shell = []string{"/bin/sh", "-c"} },
		"default shell":  func(st *buildState, _ *modal.Layer, _ *instruction, _ *string) { st.shell = nil },
		"user":           func(st *buildState, _ *modal.Layer, _ *instruction, _ *string) { st.config.User = "root" },
		"inputs":         func(_ *buildState, _ *modal.Layer, _ *instruction, s *string) { *s = "inputs2" },
		"build env key":  func(_ *buildState, l *modal.Layer, _ *instruction, _ *string) { l.BuildEnv["OTHER"] = "x" },
		"build env gone": func(_ *buildState, l *modal.Layer, _ *instruction, _ *string) { l.BuildEnv = nil },
		"gpu":            func(_ *buildState, l *modal.Layer, _ *instruction, _ *string) { l.GPU = "T4" },
		"build env renamed": func(_ *buildState, l *modal.Layer, _ *instruction, _ *string) {
			l.BuildEnv = map[string]string{"TOKEN2": "secret-1"}
		},
	}
	seen := map[string]string{k0: "baseline"}
	for name, change := range changes {
		st, l, in2, inputs := uKeyState(), uKeyLayer(), in, "inputs"
		change(st, l, &in2, &inputs)
		k := stepKey(st, l, in2, inputs, DefaultEpoch)
		if k == k0 {
			t.Errorf("changing %s did not change the key", name)
		}
		if prev, dup := seen[k]; dup {
			t.Errorf("changing %s gave the same key as %s", name, prev)
		}
		seen[k] = name
	}

	same := map[string]func(st *buildState, l *modal.Layer){
		"build env value": func(_ *buildState, l *modal.Layer) { l.BuildEnv["TOKEN"] = "secret-2" },
		"force build":     func(_ *buildState, l *modal.Layer) { l.ForceBuild = true },
		"method":          func(_ *buildState, l *modal.Layer) { l.Method = "apt_install" },
		"parent image id": func(st *buildState, _ *modal.Layer) { st.id = "im-1111111111111111111111" },
		"history":         func(st *buildState, _ *modal.Layer) { st.configOnly("ENV X=1") },
		"cmd":             func(st *buildState, _ *modal.Layer) { st.config.Cmd = []string{"sleep", "1"} },
	}
	for name, change := range same {
		st, l := uKeyState(), uKeyLayer()
		change(st, l)
		if k := stepKey(st, l, in, "inputs", DefaultEpoch); k != k0 {
			t.Errorf("changing only %s changed the key", name)
		}
	}
	// The reproducibility epoch clamps the layer's mtimes: it is an input.
	if stepKey(uKeyState(), uKeyLayer(), in, "inputs", DefaultEpoch.Add(time.Second)) == k0 {
		t.Error("changing the epoch did not change the key")
	}
	// Key order of BuildEnv does not matter.
	l1, l2 := uKeyLayer(), uKeyLayer()
	l1.BuildEnv = map[string]string{"A": "1", "B": "2", "C": "3"}
	l2.BuildEnv = map[string]string{"C": "x", "A": "y", "B": "z"}
	if stepKey(uKeyState(), l1, in, "", DefaultEpoch) != stepKey(uKeyState(), l2, in, "", DefaultEpoch) {
		t.Error("BuildEnv with the same names but other values (and insertion order) changed the key")
	}
}

// ---- config generation with a real store ----

func uTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func uBuilder(t *testing.T) *Builder {
	t.Helper()
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return &Builder{store: s, progress: ProgressFunc(func(Event) {})}
}

// uRootState puts one real layer into b's store and returns a state as a
// DebianSlim FROM step leaves it.
func uRootState(t *testing.T, b *Builder) *buildState {
	t.Helper()
	data := uTar(t, map[string]string{"etc/os-release": "ID=debian\n"})
	lay, err := b.store.Blobs().WriteLayer(context.Background(), func(w io.Writer) error { _, err := w.Write(data); return err })
	if err != nil {
		t.Fatal(err)
	}
	st := &buildState{}
	st.apply(store.Step{Key: "root", Instruction: "FROM python:3.11-slim-bookworm", Layer: lay.Descriptor, DiffID: lay.DiffID,
		ChainID: snapshot.ChainID("", lay.DiffID)})
	st.config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"}
	return st
}

// uExecLayer builds the last layer of img on st as Build does (solveLayer),
// and commits the image. A root layer is built on st as its base (st
// stands in for the bootstrap, see uRootState). Config-only instructions
// need no sandbox.
func uExecLayer(t *testing.T, b *Builder, st *buildState, img Image) Result {
	t.Helper()
	l := img.layers[len(img.layers)-1]
	on := l
	if l.Root != nil {
		c := *l
		c.Root, c.Commands = nil, append([]string{"FROM base"}, l.Commands[1:]...)
		on = &c
	}
	ins, err := parseCommands(on.Commands)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	if err := b.solveLayer(context.Background(), st, on, ins, make([]Event, len(ins)), nil, false, nil, &stopped); err != nil {
		t.Fatalf("solveLayer: %v", err)
	}
	res, err := b.commitImage(st, l, nil)
	if err != nil {
		t.Fatalf("commitImage: %v", err)
	}
	return res
}

func TestCommitImageConfig(t *testing.T) {
	b := uBuilder(t)
	st := uRootState(t, b)
	root := DebianSlim("3.11")
	r1 := uExecLayer(t, b, st, root)
	if st.id != r1.ID {
		t.Errorf("state id %q, want the committed image %q", st.id, r1.ID)
	}
	if !reflect.DeepEqual(r1.Config.Config.Cmd, []string{"sleep", "172800"}) {
		t.Errorf("debian_slim CMD = %q", r1.Config.Config.Cmd)
	}

	img := root.Env(map[string]string{"A": "x y", "B": "$HOME", "LANG": "en_US.UTF-8"})
	r2 := uExecLayer(t, b, st, img)
	wantEnv := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=en_US.UTF-8", "A=x y", "B=$HOME"}
	if !reflect.DeepEqual(r2.Config.Config.Env, wantEnv) {
		t.Errorf("env = %q, want %q (LANG replaced in place, $HOME literal)", r2.Config.Config.Env, wantEnv)
	}
	if r2.ID == r1.ID {
		t.Error("child image has its parent's ID")
	}

	img = img.Entrypoint([]string{"/entry.sh", "--flag"})
	r3 := uExecLayer(t, b, st, img)
	if !reflect.DeepEqual(r3.Config.Config.Entrypoint, []string{"/entry.sh", "--flag"}) {
		t.Errorf("entrypoint = %q", r3.Config.Config.Entrypoint)
	}
	if r3.Config.Config.Cmd != nil {
		t.Errorf("ENTRYPOINT did not reset the inherited CMD: %q", r3.Config.Config.Cmd)
	}

	img = img.Cmd([]string{"serve", "--port", "8000"})
	r4 := uExecLayer(t, b, st, img)
	if !reflect.DeepEqual(r4.Config.Config.Cmd, []string{"serve", "--port", "8000"}) {
		t.Errorf("cmd = %q", r4.Config.Config.Cmd)
	}

	img = img.Shell([]string{"/bin/bash", "-c"})
	r6 := uExecLayer(t, b, st, img)
	if !reflect.DeepEqual(st.shell, []string{"/bin/bash", "-c"}) {
		t.Errorf("shell = %q", st.shell)
	}

	// The config as stored.
	m, err := b.store.Blobs().Manifest(r6.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if r6.Manifest.MediaType != ocispec.MediaTypeImageManifest || m.MediaType != ocispec.MediaTypeImageManifest || m.SchemaVersion != 2 {
		t.Errorf("manifest media type %q / %q, schema %d", r6.Manifest.MediaType, m.MediaType, m.SchemaVersion)
	}
	if m.Config.MediaType != ocispec.MediaTypeImageConfig {
		t.Errorf("config media type %q", m.Config.MediaType)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != ocispec.MediaTypeImageLayerZstd || m.Layers[0].Digest != st.layers[0].Digest {
		t.Errorf("layers = %+v", m.Layers)
	}
	var cfg dockerspec.DockerOCIImage
	if err := b.store.Blobs().ReadJSON(m.Config.Digest, &cfg); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, r6.Config) {
		t.Errorf("stored config differs from the result:\n%+v\n%+v", cfg, r6.Config)
	}
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s", cfg.OS, cfg.Architecture)
	}
	if cfg.RootFS.Type != "layers" || !reflect.DeepEqual(cfg.RootFS.DiffIDs, []digest.Digest{st.diffIDs[0]}) {
		t.Errorf("rootfs = %+v", cfg.RootFS)
	}
	wantEnv = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=en_US.UTF-8", "A=x y", "B=$HOME"}
	c := cfg.Config
	if !reflect.DeepEqual(c.Env, wantEnv) ||
		!reflect.DeepEqual(c.Entrypoint, []string{"/entry.sh", "--flag"}) || !reflect.DeepEqual(c.Cmd, []string{"serve", "--port", "8000"}) {
		t.Errorf("stored config = %+v", c)
	}
	wantHist := []ocispec.History{
		{CreatedBy: "FROM python:3.11-slim-bookworm", Comment: "snapbuild"},
		{CreatedBy: `CMD ["sleep", "172800"]`, Comment: "snapbuild", EmptyLayer: true},
		{CreatedBy: "ENV A='x y'", Comment: "snapbuild", EmptyLayer: true},
		{CreatedBy: "ENV B='$HOME'", Comment: "snapbuild", EmptyLayer: true},
		{CreatedBy: "ENV LANG=en_US.UTF-8", Comment: "snapbuild", EmptyLayer: true},
		{CreatedBy: `ENTRYPOINT ["/entry.sh", "--flag"]`, Comment: "snapbuild", EmptyLayer: true},
		{CreatedBy: `CMD ["serve", "--port", "8000"]`, Comment: "snapbuild", EmptyLayer: true},
		{CreatedBy: `SHELL ["/bin/bash", "-c"]`, Comment: "snapbuild", EmptyLayer: true},
	}
	if !reflect.DeepEqual(cfg.History, wantHist) {
		t.Errorf("history:\n got  %+v\n want %+v", cfg.History, wantHist)
	}
	// Non-empty history entries must match the layers (OCI rule).
	nonEmpty := 0
	for _, h := range cfg.History {
		if !h.EmptyLayer {
			nonEmpty++
		}
	}
	if nonEmpty != len(cfg.RootFS.DiffIDs) {
		t.Errorf("%d non-empty history entries for %d layers", nonEmpty, len(cfg.RootFS.DiffIDs))
	}

	// Records: each Modal layer is an image of its own, chained by Parent.
	rec, err := b.store.Resolve(r6.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Parent != r4.ID || rec.Manifest.Digest != r6.Manifest.Digest || !reflect.DeepEqual(rec.Shell, []string{"/bin/bash", "-c"}) || rec.ChainID != st.chain {
		t.Errorf("image record = %+v", rec)
	}
	info, err := b.Inspect(r2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(info.Config.Config.Env, r2.Config.Config.Env) || info.Size != st.layers[0].Size {
		t.Errorf("Inspect(r2) = %+v", info)
	}
	for _, r := range []Result{r1, r2, r3, r4, r6} {
		if !store.ValidImageID(r.ID) {
			t.Errorf("invalid image ID %q", r.ID)
		}
	}
}

func TestCommitImageRawJSON(t *testing.T) {
	b := uBuilder(t)
	st := &buildState{} // no layers at all
	l := &modal.Layer{Method: "debian_slim", Commands: []string{"FROM scratch"}}
	res, err := b.commitImage(st, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.store.Blobs().Manifest(res.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.store.Blobs().ReadBlob(m.Config.Digest)
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	rootfs, _ := generic["rootfs"].(map[string]any)
	if ids, ok := rootfs["diff_ids"].([]any); !ok || len(ids) != 0 {
		t.Errorf("rootfs.diff_ids = %#v, want an empty JSON list (not null)", rootfs["diff_ids"])
	}
	if _, ok := generic["created"]; ok {
		t.Errorf("config has a created time (images must be reproducible): %s", raw)
	}
	rawM, err := b.store.Blobs().ReadBlob(res.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(rawM, []byte(`"layers":[]`)) {
		t.Errorf("manifest layers is not an empty list: %s", rawM)
	}
}

func TestCommitImageDeterministic(t *testing.T) {
	commit := func(b *Builder, cmds []string, parent string, files []contextFile) Result {
		st := uRootState(t, b)
		st.id = parent
		res, err := b.commitImage(st, &modal.Layer{Method: "run_commands", Commands: cmds}, files)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	b1, b2 := uBuilder(t), uBuilder(t)
	cmds := []string{"FROM base", "RUN true"}
	a := commit(b1, cmds, "im-aaaaaaaaaaaaaaaaaaaaaa", nil)
	if again := commit(b1, cmds, "im-aaaaaaaaaaaaaaaaaaaaaa", nil); again.ID != a.ID || again.Manifest.Digest != a.Manifest.Digest {
		t.Errorf("same store, same input: %s/%s vs %s/%s", again.ID, again.Manifest.Digest, a.ID, a.Manifest.Digest)
	}
	if other := commit(b2, cmds, "im-aaaaaaaaaaaaaaaaaaaaaa", nil); other.ID != a.ID || other.Manifest.Digest != a.Manifest.Digest {
		t.Errorf("another store, same input: %s vs %s", other.ID, a.ID)
	}
	if c := commit(b1, []string{"FROM base", "RUN  true"}, "im-aaaaaaaaaaaaaaaaaaaaaa", nil); c.ID == a.ID {
		t.Error("different commands gave the same image ID")
	}
	if c := commit(b1, cmds, "im-bbbbbbbbbbbbbbbbbbbbbb", nil); c.ID == a.ID {
		t.Error("different parent gave the same image ID")
	}
	f := []contextFile{{path: "app/x", digest: digest.FromString("x"), mode: 0o644}}
	withFiles := commit(b1, cmds, "im-aaaaaaaaaaaaaaaaaaaaaa", f)
	if withFiles.ID == a.ID {
		t.Error("context files did not change the image ID")
	}
	f[0].mode = 0o755
	if c := commit(b1, cmds, "im-aaaaaaaaaaaaaaaaaaaaaa", f); c.ID == withFiles.ID {
		t.Error("a context file's mode did not change the image ID")
	}
}

func TestSetEnv(t *testing.T) {
	orig := []string{"A=1", "B=2", "C=3"}
	got := setEnv(orig, "B", "x=y")
	if !reflect.DeepEqual(got, []string{"A=1", "B=x=y", "C=3"}) {
		t.Errorf("replace: %q", got)
	}
	if !reflect.DeepEqual(orig, []string{"A=1", "B=2", "C=3"}) {
		t.Errorf("setEnv modified its argument: %q", orig)
	}
	got = setEnv(orig, "D", "")
	if !reflect.DeepEqual(got, []string{"A=1", "B=2", "C=3", "D="}) {
		t.Errorf("append: %q", got)
	}
	// A prefix of a name is not that name.
	got = setEnv([]string{"AB=1", "A"}, "A", "2")
	if !reflect.DeepEqual(got, []string{"AB=1", "A=2"}) {
		t.Errorf("prefix: %q", got)
	}
	if got := setEnv(nil, "K", "v"); !reflect.DeepEqual(got, []string{"K=v"}) {
		t.Errorf("nil: %q", got)
	}
	// The appended result does not share storage with the input.
	base := make([]string, 1, 10)
	base[0] = "A=1"
	x := setEnv(base, "X", "1")
	y := setEnv(base, "Y", "1")
	if x[1] != "X=1" || y[1] != "Y=1" {
		t.Errorf("aliasing: %q %q", x, y)
	}
}

func TestWithPath(t *testing.T) {
	if got := withPath([]string{"A=1"}); got[len(got)-1] != "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" {
		t.Errorf("withPath = %q", got)
	}
	if got := withPath([]string{"PATH=/x"}); !reflect.DeepEqual(got, []string{"PATH=/x"}) {
		t.Errorf("withPath kept = %q", got)
	}
}

func TestBuilderExportTagRemove(t *testing.T) {
	b := uBuilder(t)
	st := uRootState(t, b)
	res := uExecLayer(t, b, st, DebianSlim("3.11"))

	dir := filepath.Join(t.TempDir(), "out")
	if err := b.Export(res.ID, "oci:"+dir+":snap"); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != res.Manifest.Digest || idx.Manifests[0].Annotations[ocispec.AnnotationRefName] != "snap" {
		t.Errorf("index = %s", raw)
	}

	err = b.Export("nope", "oci:"+dir+":x")
	if err == nil || !strings.HasPrefix(err.Error(), `no image "nope" in store `) {
		t.Errorf("export of a missing image: %v", err)
	}
	if err := b.Export(res.ID, "docker://x"); err == nil {
		t.Error("export to docker://: no error")
	}

	// Names.
	for _, bad := range []string{"", "im-foo", "a b"} {
		if err := b.Tag(bad, res.ID); err == nil {
			t.Errorf("Tag(%q): no error", bad)
		}
	}
	if err := b.Tag("hello", res.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.Tag("hello2", "hello"); err != nil { // a name can name a name's image
		t.Fatal(err)
	}
	info, err := b.Inspect("hello")
	if err != nil || info.ID != res.ID || !reflect.DeepEqual(info.Names, []string{"hello", "hello2"}) {
		t.Errorf("Inspect(hello) = %+v, %v", info, err)
	}
	if err := b.Export("hello", "oci-archive:"+filepath.Join(t.TempDir(), "x.tar")); err != nil {
		t.Errorf("export by name: %v", err)
	}
	imgs, err := b.Images()
	if err != nil || len(imgs) != 1 || imgs[0].ID != res.ID || !reflect.DeepEqual(imgs[0].Names, []string{"hello", "hello2"}) {
		t.Errorf("Images() = %+v, %v", imgs, err)
	}
	if err := b.Remove("hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Inspect("hello"); err == nil {
		t.Error("Inspect after Remove: no error")
	}
	if _, err := b.Inspect(res.ID); err != nil {
		t.Errorf("the image itself must stay after Remove: %v", err)
	}
	if err := b.Remove("hello"); err == nil {
		t.Error("Remove of a missing name: no error")
	}
	if err := b.Tag("x", "im-0000000000000000000000"); err == nil {
		t.Error("Tag of a missing image: no error")
	}
}

// uStubBase records an image with no layers in b's store and returns its ID.
func uStubBase(t *testing.T, b *Builder) string {
	t.Helper()
	m, err := b.store.Blobs().WriteImage(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config:   ocispec.ImageConfig{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const id = "im-stubstubstubstubstub12"
	if err := b.store.PutImage(store.Image{ID: id, Manifest: m}); err != nil {
		t.Fatal(err)
	}
	return id
}

// Build end to end on steps that need no sandbox: FROM an existing image and
// config-only instructions.
func TestBuildConfigOnlyChain(t *testing.T) {
	t.Setenv("MODAL_IMAGE_BUILDER_VERSION", "")
	b := uBuilder(t)
	var events []Event
	b.progress = ProgressFunc(func(e Event) { events = append(events, e) })
	base := uStubBase(t, b)
	img := FromID(base).Env(map[string]string{"B": "2", "A": "x y"}).Cmd([]string{"run", "it"})
	res, err := b.Build(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	c := res.Config.Config
	if !reflect.DeepEqual(c.Env, []string{"PATH=/bin", "A=x y", "B=2"}) || !reflect.DeepEqual(c.Cmd, []string{"run", "it"}) {
		t.Errorf("config = %+v", c)
	}
	// Three entries (from_id, env, cmd) of four instructions; only the
	// from_id entry is cached, the others change only the config.
	if res.Stats != (Stats{Steps: 4, Cached: 1, Config: 3, Entries: 3, EntriesCached: 1}) {
		t.Errorf("stats = %+v, want 4 steps, 1 cached (the FROM of a stored image), 3 config; 3 entries, 1 cached", res.Stats)
	}
	var got []string
	for _, e := range events {
		if e.Kind == EventEntryStart || e.Kind == EventEntryDone {
			got = append(got, fmt.Sprintf("%s [%d/%d] %s %s cached=%v err=%q", e.Kind, e.Entry, e.Entries, e.Method, e.Label, e.Cached, e.Error))
			continue
		}
		got = append(got, fmt.Sprintf("%s %d/%d [%d/%d] %s cached=%v err=%q", e.Kind, e.Step, e.Total, e.Entry, e.Entries, e.Instruction, e.Cached, e.Error))
	}
	want := []string{
		`entry-start [1/3] from_id from_id("` + base + `") cached=false err=""`,
		"start 1/4 [1/3] FROM " + base + ` cached=false err=""`,
		"done 1/4 [1/3] FROM " + base + ` cached=true err=""`,
		`entry-done [1/3] from_id from_id("` + base + `") cached=true err=""`,
		`entry-start [2/3] env env({"A": "x y", "B": "2"}) cached=false err=""`,
		`start 2/4 [2/3] ENV A='x y' cached=false err=""`,
		`done 2/4 [2/3] ENV A='x y' cached=false err=""`,
		`start 3/4 [2/3] ENV B=2 cached=false err=""`,
		`done 3/4 [2/3] ENV B=2 cached=false err=""`,
		`entry-done [2/3] env env({"A": "x y", "B": "2"}) cached=false err=""`,
		`entry-start [3/3] cmd cmd(["run", "it"]) cached=false err=""`,
		`start 4/4 [3/3] CMD ["run", "it"] cached=false err=""`,
		`done 4/4 [3/3] CMD ["run", "it"] cached=false err=""`,
		`entry-done [3/3] cmd cmd(["run", "it"]) cached=false err=""`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events:\n got  %q\n want %q", got, want)
	}
	// Every Modal layer is an image; the chain is linked by Parent.
	rec, err := b.store.Resolve(res.ID)
	if err != nil {
		t.Fatal(err)
	}
	envRec, err := b.store.Resolve(rec.Parent)
	if err != nil {
		t.Fatalf("parent %q: %v", rec.Parent, err)
	}
	// from_id adds no layer of its own: the env layer's parent is the base.
	if envRec.Parent != base {
		t.Errorf("env layer's parent = %q, want the base %q", envRec.Parent, base)
	}
	if r, err := b.Build(context.Background(), FromID(base)); err != nil || r.ID != base {
		t.Errorf("Build(FromID(%s)) = %s, %v; want the same image", base, r.ID, err)
	}
	// Deterministic: the same chain builds to the same ID.
	res2, err := b.Build(context.Background(), img)
	if err != nil || res2.ID != res.ID || res2.Manifest.Digest != res.Manifest.Digest {
		t.Errorf("rebuild: %s %v, want %s", res2.ID, err, res.ID)
	}
	// A different value, a different image.
	res3, err := b.Build(context.Background(), FromID(base).Env(map[string]string{"B": "3", "A": "x y"}).Cmd([]string{"run", "it"}))
	if err != nil || res3.ID == res.ID {
		t.Errorf("changed env: %s %v", res3.ID, err)
	}
}

func TestBuildErrors(t *testing.T) {
	t.Setenv("MODAL_IMAGE_BUILDER_VERSION", "")
	b := uBuilder(t)
	ctx := context.Background()
	if _, err := b.Build(ctx, Image{}); err == nil || err.Error() != "No commands were provided for the image — have you tried using snapbuild.DebianSlim()?" {
		t.Errorf("empty image: %v", err)
	}
	bad := DebianSlim("2.7")
	if _, err := b.Build(ctx, bad); err != bad.Err() {
		t.Errorf("image error: %v, want %v", err, bad.Err())
	}
	if _, err := b.Build(ctx, FromID("missing")); err == nil || !strings.HasPrefix(err.Error(), `from_id: FROM missing: image "missing" is not in the store, and snapbuild does not pull images: provide it first`) {
		t.Errorf("missing base: %v", err)
	}
	if _, err := b.Build(ctx, FromID("im-0123456789012345678901")); err == nil || !strings.HasPrefix(err.Error(), `from_id: no image "im-0123456789012345678901" in store `) {
		t.Errorf("missing base ID: %v", err)
	}
	noFrom := Image{layers: []*modal.Layer{{Method: "x", Commands: []string{"RUN true"}, Root: &modal.RootSpec{FromID: "a"}}}}
	if _, err := b.Build(ctx, noFrom); err == nil || err.Error() != "x: a layer's commands must start with FROM" {
		t.Errorf("no FROM: %v", err)
	}
	twoRoots := FromID("a")
	twoRoots.layers = append(twoRoots.layers, &modal.Layer{Method: "y", Commands: []string{"FROM other"}})
	if _, err := b.Build(ctx, twoRoots); err == nil || err.Error() != `y: only the first layer may have a FROM other than "FROM base"` {
		t.Errorf("second root: %v", err)
	}
	unsupported := FromID("a")
	unsupported.layers = append(unsupported.layers, &modal.Layer{Method: "z", Commands: []string{"FROM base", "COPPY a b"}})
	base := uStubBase(t, b)
	unsupported.layers[0] = FromID(base).layers[0]
	if _, err := b.Build(ctx, unsupported); err == nil || !strings.Contains(err.Error(), `unknown instruction: COPPY (did you mean COPY?)`) {
		t.Errorf("unknown instruction: %v", err)
	}
	t.Setenv("MODAL_IMAGE_BUILDER_VERSION", "2024.10")
	if _, err := b.Build(ctx, FromID(base)); err == nil || !strings.Contains(err.Error(), "snapbuild implements the 2025.06 builder") {
		t.Errorf("builder version: %v", err)
	}
	t.Setenv("MODAL_IMAGE_BUILDER_VERSION", "PREVIEW")
	if _, err := b.Build(ctx, FromID(base)); err != nil {
		t.Errorf("PREVIEW: %v", err)
	}
}

// env() expands references to variables the image sets ($PATH), as Modal's
// examples need, and keeps others literal; ENV in dockerfile text follows
// Docker's quoting.
func TestEnvExpansionRule(t *testing.T) {
	b := uBuilder(t)
	st := uRootState(t, b)
	img := uBase(t).EnvVars(EnvVar{"PATH", "/root/.local/bin:$PATH"}, EnvVar{"B", "$HOME/x"}, EnvVar{"C", "${LANG}"})
	res := uExecLayer(t, b, st, img)
	env := res.Config.Config.Env
	for _, want := range []string{"PATH=/root/.local/bin:/usr/local/bin:/usr/bin:/bin", "B=$HOME/x", "C=C.UTF-8"} {
		if !slices.Contains(env, want) {
			t.Errorf("env %q lacks %q", env, want)
		}
	}
}

// Entries count what the user wrote: each dockerfile_commands instruction
// is one; a failing instruction ends its entry with the error, and the
// summary counts agree with what the progress printed.
func TestBuildEntriesDockerfileAndFailure(t *testing.T) {
	t.Setenv("MODAL_IMAGE_BUILDER_VERSION", "")
	b := uBuilder(t)
	var plain bytes.Buffer
	b.progress = NewPlainProgress(&plain)
	base := uStubBase(t, b)
	img := FromID(base).DockerfileCommands([]string{"ENV A=1", `CMD ["a"]`}, DockerfileOptions{ContextDir: t.TempDir()}).
		Env(map[string]string{"B": "2"})
	res, err := b.Build(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	want := `#1 [1/4] from_id("` + base + `")` + "\n" +
		"#1 FROM " + base + "\n" +
		"#1 CACHED\n" +
		"#2 [2/4] ENV A=1\n" +
		"#2 DONE Ns\n" +
		`#3 [3/4] CMD ["a"]` + "\n" +
		"#3 DONE Ns\n" +
		`#4 [4/4] env({"B": "2"})` + "\n" +
		"#4 ENV B=2\n" +
		"#4 DONE Ns\n"
	if got := regexp.MustCompile(`DONE [0-9.]+s`).ReplaceAllString(plain.String(), "DONE Ns"); got != want {
		t.Errorf("progress:\n got  %q\n want %q", got, want)
	}
	if s := res.Stats; s.Entries != 4 || s.EntriesCached != strings.Count(plain.String(), "CACHED") || s.Steps != 4 || s.Config != 3 {
		t.Errorf("stats %+v: want 4 entries, as many cached as printed CACHED, 4 steps, 3 config", s)
	}

	// ${X:?} fails when X is unset: the entry ends with the error.
	plain.Reset()
	var events []Event
	b.progress = ProgressFunc(func(e Event) { events = append(events, e) })
	_, err = b.Build(context.Background(), FromID(base).DockerfileCommands([]string{"ENV C=${NOPE:?unset}"}, DockerfileOptions{ContextDir: t.TempDir()}))
	if err == nil {
		t.Fatal("a failing ENV built")
	}
	if len(events) == 0 {
		t.Fatalf("no events; err %v", err)
	}
	last := events[len(events)-1]
	if last.Kind != EventEntryDone || last.Entry != 2 || last.Error == "" || last.Cached {
		t.Errorf("last event %+v: want the env entry done with its error", last)
	}
}

// With a heartbeat of 1ms, nothing reaches the progress after Build
// returns (run with -race).
func TestBuildNoEventAfterReturn(t *testing.T) {
	t.Setenv("MODAL_IMAGE_BUILDER_VERSION", "")
	b := uBuilder(t)
	b.heartbeat = time.Millisecond
	var mu sync.Mutex
	var n int
	b.progress = ProgressFunc(func(e Event) {
		time.Sleep(2 * time.Millisecond) // a slow terminal: heartbeats are due
		mu.Lock()
		n++
		mu.Unlock()
	})
	base := uStubBase(t, b)
	if _, err := b.Build(context.Background(), FromID(base).Env(map[string]string{"A": "1"}).Cmd([]string{"x"})); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	after := n
	mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if n != after {
		t.Errorf("%d events after Build returned", n-after)
	}
	if _, ok := b.progress.(*syncProgress); ok {
		t.Error("Build left its wrapper as the Builder's progress")
	}
}
