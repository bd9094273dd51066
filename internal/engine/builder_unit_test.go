package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	"github.com/snapbuild/snapbuild/internal/modal"
	"github.com/snapbuild/snapbuild/internal/store"
	"github.com/snapbuild/snapbuild/snapshot"
)

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
	in := instruction{Text: "RUN echo hi"}
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
		"instruction":  func(_ *buildState, _ *modal.Layer, in *instruction, _ *string) { in.Text = "RUN echo  hi" },
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

func uBuilder(t *testing.T) *Engine {
	t.Helper()
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	b := &Engine{store: s, progress: ProgressFunc(func(Event) {})}
	if err := b.share(); err != nil {
		t.Fatal(err)
	}
	return b
}

// uRootState puts one real layer into b's store and returns a state as a
// DebianSlim FROM step leaves it.
func uRootState(t *testing.T, b *Engine) *buildState {
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

// uExecLayer builds l on st as Build does (solveLayer),
// and commits the image. A root layer is built on st as its base (st
// stands in for the bootstrap, see uRootState). Config-only instructions
// need no sandbox.
func uExecLayer(t *testing.T, b *Engine, st *buildState, l *modal.Layer) Result {
	t.Helper()
	on := l
	if l.Root != nil {
		c := *l
		c.Root, c.Commands = nil, append([]string{"FROM base"}, l.Commands[1:]...)
		on = &c
	}
	ins, err := modal.ParseCommands(on.Commands)
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
	r1 := uExecLayer(t, b, st, uSlimLayer())
	if st.id != r1.ID {
		t.Errorf("state id %q, want the committed image %q", st.id, r1.ID)
	}
	if !reflect.DeepEqual(r1.Config.Config.Cmd, []string{"sleep", "172800"}) {
		t.Errorf("debian_slim CMD = %q", r1.Config.Config.Cmd)
	}

	r2 := uExecLayer(t, b, st, uLayer("env", "ENV A='x y'", "ENV B='$HOME'", "ENV LANG=en_US.UTF-8"))
	wantEnv := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=en_US.UTF-8", "A=x y", "B=$HOME"}
	if !reflect.DeepEqual(r2.Config.Config.Env, wantEnv) {
		t.Errorf("env = %q, want %q (LANG replaced in place, $HOME literal)", r2.Config.Config.Env, wantEnv)
	}
	if r2.ID == r1.ID {
		t.Error("child image has its parent's ID")
	}

	r3 := uExecLayer(t, b, st, uLayer("entrypoint", `ENTRYPOINT ["/entry.sh", "--flag"]`))
	if !reflect.DeepEqual(r3.Config.Config.Entrypoint, []string{"/entry.sh", "--flag"}) {
		t.Errorf("entrypoint = %q", r3.Config.Config.Entrypoint)
	}
	if r3.Config.Config.Cmd != nil {
		t.Errorf("ENTRYPOINT did not reset the inherited CMD: %q", r3.Config.Config.Cmd)
	}

	r4 := uExecLayer(t, b, st, uLayer("cmd", `CMD ["serve", "--port", "8000"]`))
	if !reflect.DeepEqual(r4.Config.Config.Cmd, []string{"serve", "--port", "8000"}) {
		t.Errorf("cmd = %q", r4.Config.Config.Cmd)
	}

	r6 := uExecLayer(t, b, st, uLayer("shell", `SHELL ["/bin/bash", "-c"]`))
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
	commit := func(b *Engine, cmds []string, parent string, files []contextFile) Result {
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
	res := uExecLayer(t, b, st, uSlimLayer())

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

// env() expands references to variables the image sets ($PATH), as Modal's
// examples need, and keeps others literal; ENV in dockerfile text follows
// Docker's quoting.
func TestEnvExpansionRule(t *testing.T) {
	b := uBuilder(t)
	st := uRootState(t, b)
	res := uExecLayer(t, b, st, uLayer("env", "ENV PATH='/root/.local/bin:$PATH'", "ENV B='$HOME/x'", "ENV C='${LANG}'"))
	env := res.Config.Config.Env
	for _, want := range []string{"PATH=/root/.local/bin:/usr/local/bin:/usr/bin:/bin", "B=$HOME/x", "C=C.UTF-8"} {
		if !slices.Contains(env, want) {
			t.Errorf("env %q lacks %q", env, want)
		}
	}
}

// uSlimLayer is debian_slim("3.11") as the root package lowers it.
func uSlimLayer() *modal.Layer {
	return &modal.Layer{Method: "debian_slim", Root: &modal.RootSpec{Debian: &modal.DebianBase{Suite: "bookworm", Python: "3.11", Version: "3.11"}},
		Commands: []string{"FROM python:3.11-slim-bookworm", `CMD ["sleep", "172800"]`}}
}

// uLayer is a layer of method on its parent: "FROM base", then lines.
func uLayer(method string, lines ...string) *modal.Layer {
	return &modal.Layer{Method: method, Commands: append([]string{"FROM base"}, lines...)}
}
