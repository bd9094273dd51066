package remotecache

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/oci"
	"github.com/snapbuild/snapbuild/registry"
	"github.com/snapbuild/snapbuild/snapshot"
)

// countingRegistry is go-containerregistry's in-memory registry behind a
// handler that counts started blob uploads.
type countingRegistry struct {
	mu      sync.Mutex
	uploads int
}

func startRegistry(t *testing.T) (string, *countingRegistry) {
	t.Helper()
	c := &countingRegistry{}
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/") {
			c.mu.Lock()
			c.uploads++
			c.mu.Unlock()
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), c
}

func (c *countingRegistry) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.uploads
}

// layer writes a one-file layer into s.
func layer(t *testing.T, s *oci.Store, name, content string) oci.Layer {
	t.Helper()
	l, err := s.WriteLayer(context.Background(), func(w io.Writer) error {
		tw := tar.NewWriter(w)
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := io.WriteString(tw, content); err != nil {
			return err
		}
		return tw.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// checkDiffID is an Unpacker that checks what unpacking checks: the
// uncompressed content of desc has diffID. It records the chains it made.
type checkDiffID struct {
	blobs  *oci.Store
	mu     sync.Mutex
	chains []digest.Digest
}

func (c *checkDiffID) unpack(ctx context.Context, parent, chain digest.Digest, desc ocispec.Descriptor, diffID digest.Digest) error {
	rc, err := c.blobs.OpenLayer(desc)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return err
	}
	if got := digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)); got != diffID {
		return fmt.Errorf("diffID mismatch: content has %s", got)
	}
	c.mu.Lock()
	c.chains = append(c.chains, chain)
	c.mu.Unlock()
	return nil
}

// fixture is a store with two layers and a config naming them under two
// keys, the second key's output stacked on the first's.
type fixture struct {
	store  *oci.Store
	l1, l2 oci.Layer
	k1, k2 digest.Digest
	cfg    *Config
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	s, err := oci.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{store: s, l1: layer(t, s, "a", "first"), l2: layer(t, s, "b", "second")}
	f.k1, f.k2 = digest.FromString("key one"), digest.FromString("key two")
	f.cfg = &Config{Solver: map[digest.Digest][]Output{
		f.k1: {{Layers: []ocispec.Descriptor{f.l1.Descriptor}, DiffIDs: []digest.Digest{f.l1.DiffID}}},
		f.k2: {{Layers: []ocispec.Descriptor{f.l1.Descriptor, f.l2.Descriptor}, DiffIDs: []digest.Digest{f.l1.DiffID, f.l2.DiffID}}},
	}}
	return f
}

func mustParse(t *testing.T, s string) registry.Reference {
	t.Helper()
	r, err := registry.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// importInto opens ref and looks key up into a new store; it returns the
// outputs, the hit, the warnings and the store.
func importInto(t *testing.T, ref registry.Reference, key digest.Digest, opts ...registry.Option) ([]Output, bool, []string, *oci.Store, *checkDiffID) {
	t.Helper()
	src, err := Open(context.Background(), ref, opts...)
	if err != nil {
		t.Fatalf("Open(%s) = %v", ref, err)
	}
	dst, err := oci.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	im := NewImporter([]*Source{src}, func(s string) { warnings = append(warnings, s) })
	u := &checkDiffID{blobs: dst}
	outs, ok, err := im.Solver(context.Background(), key, dst, u.unpack)
	if err != nil {
		t.Fatalf("Solver(%s) = %v", key, err)
	}
	return outs, ok, warnings, dst, u
}

func TestRegistryRoundTrip(t *testing.T) {
	host, reg := startRegistry(t)
	f := newFixture(t)
	ref := mustParse(t, host+"/cache/app:main")
	insecure := registry.WithInsecureRegistries(host)
	if err := Write(context.Background(), ref, f.cfg, f.store, nil, insecure); err != nil {
		t.Fatalf("Write = %v", err)
	}
	if n := reg.count(); n != 3 { // two layers and the config
		t.Errorf("first Write: %d blob uploads, want 3", n)
	}
	outs, ok, warnings, dst, u := importInto(t, ref, f.k2, insecure)
	if !ok || len(warnings) > 0 {
		t.Fatalf("Solver(k2) = %v, warnings %q", ok, warnings)
	}
	if len(outs) != 1 || len(outs[0].Layers) != 2 || outs[0].Layers[1].Digest != f.l2.Descriptor.Digest {
		t.Errorf("Solver(k2) outputs = %+v", outs)
	}
	for _, l := range []oci.Layer{f.l1, f.l2} {
		if !dst.Has(l.Descriptor.Digest) {
			t.Errorf("layer %s not fetched", l.Descriptor.Digest)
		}
	}
	want := []digest.Digest{snapshot.ChainID("", f.l1.DiffID), snapshot.ChainID(snapshot.ChainID("", f.l1.DiffID), f.l2.DiffID)}
	if fmt.Sprint(u.chains) != fmt.Sprint(want) {
		t.Errorf("chains unpacked = %v, want %v", u.chains, want)
	}
	// A key the cache lacks is a plain miss.
	if _, ok, warnings, _, _ := importInto(t, ref, digest.FromString("other"), insecure); ok || len(warnings) > 0 {
		t.Errorf("unknown key: hit %v, warnings %q", ok, warnings)
	}
	// Written again: every blob is there, none is uploaded.
	before := reg.count()
	if err := Write(context.Background(), ref, f.cfg, f.store, nil, insecure); err != nil {
		t.Fatal(err)
	}
	if n := reg.count() - before; n != 0 {
		t.Errorf("second Write: %d blob uploads, want 0", n)
	}
	// The artifact is an OCI manifest of the cache's type.
	r, err := name.ParseReference(host+"/cache/app:main", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(d.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != ConfigMediaType || m.Config.MediaType != ConfigMediaType || len(m.Layers) != 2 {
		t.Errorf("manifest: artifactType %q, config %q, %d layers", m.ArtifactType, m.Config.MediaType, len(m.Layers))
	}
}

// layoutCache writes f's cache into a new OCI layout and returns its
// reference and directory.
func layoutCache(t *testing.T, f fixture) (registry.Reference, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	ref := mustParse(t, "oci:"+dir+":c")
	if err := Write(context.Background(), ref, f.cfg, f.store, nil); err != nil {
		t.Fatalf("Write(%s) = %v", ref, err)
	}
	return ref, dir
}

func TestLayoutRoundTrip(t *testing.T) {
	f := newFixture(t)
	ref, _ := layoutCache(t, f)
	if _, ok, warnings, dst, _ := importInto(t, ref, f.k1); !ok || len(warnings) > 0 || !dst.Has(f.l1.Descriptor.Digest) || dst.Has(f.l2.Descriptor.Digest) {
		t.Errorf("Solver(k1) = %v, warnings %q; fetched l1 %v, l2 %v (want only l1)", ok, warnings, dst.Has(f.l1.Descriptor.Digest), dst.Has(f.l2.Descriptor.Digest))
	}
}

func TestTamperedBlobRefused(t *testing.T) {
	f := newFixture(t)
	ref, dir := layoutCache(t, f)
	p := filepath.Join(dir, "blobs", "sha256", f.l2.Descriptor.Digest.Encoded())
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, ok, warnings, dst, _ := importInto(t, ref, f.k2)
	if ok {
		t.Fatal("Solver(k2) hit with a tampered layer")
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], f.l2.Descriptor.Digest.String()) || !strings.Contains(warnings[0], f.k2.Encoded()) {
		t.Errorf("warnings = %q, want one naming layer %s and key %s", warnings, f.l2.Descriptor.Digest, f.k2)
	}
	if dst.Has(f.l2.Descriptor.Digest) {
		t.Error("the tampered blob was stored")
	}
}

func TestMissingBlobRefused(t *testing.T) {
	f := newFixture(t)
	ref, dir := layoutCache(t, f)
	if err := os.Remove(filepath.Join(dir, "blobs", "sha256", f.l1.Descriptor.Digest.Encoded())); err != nil {
		t.Fatal(err)
	}
	if _, ok, warnings, _, _ := importInto(t, ref, f.k1); ok || len(warnings) != 1 || !strings.Contains(warnings[0], f.l1.Descriptor.Digest.String()) {
		t.Errorf("Solver(k1) with its blob gone = %v, warnings %q", ok, warnings)
	}
}

func TestWrongDiffIDRefused(t *testing.T) {
	f := newFixture(t)
	f.cfg.Solver[f.k1][0].DiffIDs[0] = f.l2.DiffID // a record that lies
	ref, _ := layoutCache(t, f)
	if _, ok, warnings, _, _ := importInto(t, ref, f.k1); ok || len(warnings) != 1 || !strings.Contains(warnings[0], "diffID") {
		t.Errorf("Solver(k1) with a wrong diffID = %v, warnings %q", ok, warnings)
	}
}

func TestOpenRefusesImages(t *testing.T) {
	host, _ := startRegistry(t)
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(host+"/not/cache:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), mustParse(t, host+"/not/cache:1"), registry.WithInsecureRegistries(host))
	if !errors.Is(err, ErrNoCache) {
		t.Errorf("Open(an image) = %v, want ErrNoCache", err)
	}
	_, err = Open(context.Background(), mustParse(t, host+"/nothing/here:1"), registry.WithInsecureRegistries(host))
	if !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Open(nothing) = %v, want registry.ErrNotFound", err)
	}
}

func TestRecorderModes(t *testing.T) {
	r := NewRecorder()
	k1, k2 := digest.FromString("1"), digest.FromString("2")
	r.Solver(k1, []Output{{}})
	r.Solver(k2, []Output{{}})
	r.Final(k2)
	if c := r.Config(ModeMin); len(c.Solver) != 1 || c.Solver[k2] == nil {
		t.Errorf("min: %v", c.Solver)
	}
	if c := r.Config(ModeMax); len(c.Solver) != 2 {
		t.Errorf("max: %v", c.Solver)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, ref, mode, err string
	}{
		{in: "docker://localhost:5000/c/app:main", ref: "docker://localhost:5000/c/app:main", mode: "min"},
		{in: "localhost:5000/c/app:main", ref: "docker://localhost:5000/c/app:main", mode: "min"},
		{in: "oci:/tmp/c:t", ref: "oci:/tmp/c:t", mode: "min"},
		{in: "type=registry,ref=localhost:5000/c/app:main,mode=max", ref: "docker://localhost:5000/c/app:main", mode: "max"},
		{in: "type=local,dest=/tmp/c,tag=t", ref: "oci:/tmp/c:t", mode: "min"},
		{in: "type=registry,ref=localhost:5000/c/app:main,mode=all", err: "mode=min or mode=max"},
		{in: "type=gha", err: "type=gha is not supported"},
		{in: "type=registry", err: "needs ref="},
		{in: "type=registry,ref=localhost:5000/c:1,compression=zstd", err: "compression is not supported"},
		{in: "type=registry,ref=localhost:5000/c:1,colour=blue", err: "unknown keys colour (known: type, ref, dest, tag, mode, ignore-error, image-manifest, oci-mediatypes)"},
		{in: "docker-archive:/tmp/x.tar", err: "not in docker-archive"},
		// No tag: latest, as BuildKit's local cache (and a registry name).
		{in: "oci:/tmp/c", ref: "oci:/tmp/c:latest", mode: "min"},
		{in: "type=local,dest=/tmp/c,mode=max", ref: "oci:/tmp/c:latest", mode: "max"},
		{in: "localhost:5000/c/app", ref: "docker://localhost:5000/c/app:latest", mode: "min"},
		// buildx's keys that change nothing here.
		{in: "type=registry,ref=localhost:5000/c/app:main,mode=max,image-manifest=true,oci-mediatypes=true", ref: "docker://localhost:5000/c/app:main", mode: "max"},
		{in: "type=registry,ref=localhost:5000/c/app:main,image-manifest=yes", err: "image-manifest=true or image-manifest=false"},
		{in: "type=registry,ref=localhost:5000/c/app:main,ignore-error=maybe", err: "ignore-error=true or ignore-error=false"},
		// A cache is written by tag.
		{in: "docker://localhost:5000/c/app@sha256:" + strings.Repeat("a", 64), err: "not by digest"},
		{in: "type=registry,ref=localhost:5000/c/app@sha256:" + strings.Repeat("a", 64), err: "not by digest"},
	} {
		e, err := ParseExport(tc.in)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseExport(%q) = %v, want an error with %q", tc.in, err, tc.err)
			}
		case err != nil:
			t.Errorf("ParseExport(%q) = %v", tc.in, err)
		case e.Ref.String() != tc.ref || string(e.Mode) != tc.mode:
			t.Errorf("ParseExport(%q) = %s %s, want %s %s", tc.in, e.Ref, e.Mode, tc.ref, tc.mode)
		}
	}
	if e, err := ParseExport("type=local,dest=/tmp/c,ignore-error=true"); err != nil || !e.IgnoreError {
		t.Errorf("ParseExport(ignore-error=true) = %+v, %v", e, err)
	}
	if e, err := ParseExport("oci:/tmp/c:t"); err != nil || e.IgnoreError {
		t.Errorf("ParseExport(oci:) = %+v, %v: ignore-error is off by default", e, err)
	}
	if _, err := ParseImport("localhost:5000/c/app@sha256:" + strings.Repeat("a", 64)); err == nil || !strings.Contains(err.Error(), "not by digest") {
		t.Errorf("ParseImport(a digest) = %v, want an error saying a cache is read by tag", err)
	}
	if r, err := ParseImport("type=local,src=/tmp/c"); err != nil || r.String() != "oci:/tmp/c:latest" {
		t.Errorf("ParseImport(type=local, no tag) = %v, %v, want oci:/tmp/c:latest", r, err)
	}
	if r, err := ParseImport("type=local,src=/tmp/c,tag=t"); err != nil || r.String() != "oci:/tmp/c:t" {
		t.Errorf("ParseImport(type=local) = %v, %v", r, err)
	}
	if _, err := ParseImport("type=local,dest=/tmp/c"); err == nil {
		t.Error("ParseImport(type=local,dest=) accepted: an import reads src=")
	}
}

// A cache written to another repository of the registry its layers came
// from mounts them from there instead of uploading them.
func TestCrossRepositoryMount(t *testing.T) {
	host, _ := startRegistry(t)
	f := newFixture(t)
	insecure := registry.WithInsecureRegistries(host)
	from := mustParse(t, host+"/team-a/cache:main")
	if err := Write(context.Background(), from, f.cfg, f.store, nil, insecure); err != nil {
		t.Fatal(err)
	}
	src, err := Open(context.Background(), from, insecure)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := oci.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	im := NewImporter([]*Source{src}, func(s string) { t.Error(s) })
	u := &checkDiffID{blobs: dst}
	if _, ok, err := im.Solver(context.Background(), f.k2, dst, u.unpack); !ok || err != nil {
		t.Fatalf("Solver(k2) = %v, %v", ok, err)
	}
	// go-containerregistry's in-memory registry keeps blobs for all
	// repositories at once (a HEAD in team-b finds team-a's), so what is
	// checked is what remote.Write is given: layers it mounts.
	check := func(dest string, want string) {
		t.Helper()
		img, err := artifactImage(f.cfg, dst, mountSource(mustParse(t, dest), im))
		if err != nil {
			t.Fatal(err)
		}
		ls, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ls {
			ml, ok := l.(*remote.MountableLayer)
			switch {
			case want == "" && ok:
				t.Errorf("to %s: layer mounted from %s, want an upload", dest, ml.Reference)
			case want != "" && !ok:
				t.Errorf("to %s: layer uploaded, want a mount from %s", dest, want)
			case ok && ml.Reference.Context().String() != want:
				t.Errorf("to %s: mounted from %s, want %s", dest, ml.Reference.Context(), want)
			}
		}
	}
	check(host+"/team-b/cache:main", host+"/team-a/cache")
	check(host+"/team-a/cache:other", "")      // the same repository has them
	check("other.invalid:5000/team-b/c:1", "") // another registry
	check("oci:"+t.TempDir()+":c", "")         // a layout
	if err := Write(context.Background(), mustParse(t, host+"/team-b/cache:main"), f.cfg, dst, im, insecure); err != nil {
		t.Fatal(err)
	}
}

// A cache opened under one context reads its layers under the context of
// each lookup: a build after the one that opened it still reads it.
func TestLookupAfterOpenContextEnds(t *testing.T) {
	host, _ := startRegistry(t)
	f := newFixture(t)
	ref := mustParse(t, host+"/cache/app:main")
	insecure := registry.WithInsecureRegistries(host)
	if err := Write(context.Background(), ref, f.cfg, f.store, nil, insecure); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	src, err := Open(ctx, ref, insecure)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	dst, err := oci.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	im := NewImporter([]*Source{src}, func(s string) { t.Error(s) })
	u := &checkDiffID{blobs: dst}
	if _, ok, err := im.Solver(context.Background(), f.k2, dst, u.unpack); !ok || err != nil {
		t.Errorf("Solver(k2) after Open's context ended = %v, %v", ok, err)
	}
}

// A layer refused in one cache is asked of the next --cache-from: the
// failure is the first source's, not the digest's.
func TestNextSourceAfterRefusal(t *testing.T) {
	f := newFixture(t)
	bad, dir := layoutCache(t, f)
	p := filepath.Join(dir, "blobs", "sha256", f.l1.Descriptor.Digest.Encoded())
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	good, _ := layoutCache(t, f)
	var srcs []*Source
	for _, ref := range []registry.Reference{bad, good} {
		s, err := Open(context.Background(), ref)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, s)
	}
	dst, err := oci.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	im := NewImporter(srcs, func(s string) { warnings = append(warnings, s) })
	u := &checkDiffID{blobs: dst}
	for _, key := range []digest.Digest{f.k1, f.k2} {
		outs, ok, err := im.Solver(context.Background(), key, dst, u.unpack)
		if err != nil || !ok || len(outs) != 1 {
			t.Errorf("Solver(%s) = %v, %v, %v: want a hit from the second cache", key, outs, ok, err)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], bad.String()) || !strings.Contains(warnings[0], f.l1.Descriptor.Digest.String()) {
		t.Errorf("warnings = %q, want one naming %s and layer %s", warnings, bad, f.l1.Descriptor.Digest)
	}
	if !dst.Has(f.l1.Descriptor.Digest) || !dst.Has(f.l2.Descriptor.Digest) {
		t.Error("the layers were not taken from the second cache")
	}
}

// A cache written in single-ID mode says so in its config, and its Source
// reports it; one written otherwise does not.
func TestSingleIDMarked(t *testing.T) {
	f := newFixture(t)
	plain, _ := layoutCache(t, f)
	f.cfg.IDMap = IDMapSingle
	single, dir := layoutCache(t, f)
	for _, tc := range []struct {
		ref  registry.Reference
		want bool
	}{{plain, false}, {single, true}} {
		s, err := Open(context.Background(), tc.ref)
		if err != nil {
			t.Fatal(err)
		}
		if s.SingleID() != tc.want {
			t.Errorf("Open(%s).SingleID() = %v, want %v", tc.ref, s.SingleID(), tc.want)
		}
	}
	// On the wire: "idMap": "single" in the artifact's config.
	art, err := registry.OpenArtifact(context.Background(), single)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(art.Config, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["idMap"] != "single" {
		t.Errorf("config of %s: idMap = %v, want \"single\"", dir, raw["idMap"])
	}
}
