package remote

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/oci"
)

func TestParseAddress(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"buildkit://unix:///run/buildkit/buildkitd.sock", "unix:///run/buildkit/buildkitd.sock", ""},
		{"unix:///tmp/b.sock", "unix:///tmp/b.sock", ""},
		{"buildkit://tcp://10.0.0.5:1234", "tcp://10.0.0.5:1234", ""},
		{"buildkit://tcp://buildkitd.ci.svc:1234/", "tcp://buildkitd.ci.svc:1234/", ""},
		{"buildkit://unix://run/b.sock", "", "absolute path after unix://"},
		{"buildkit://tcp://host", "", "needs a host and a port"},
		{"buildkit://tcp://host:99999", "", "port 99999"},
		{"buildkit://tcp://host:1234/x", "", "has no path"},
		{"buildkit:///run/b.sock", "", "no scheme"},
		{"buildkit://docker-container://bk", "", "scheme docker-container is not supported"},
	} {
		got, err := ParseAddress(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), "give buildkit://unix:///") {
				t.Errorf("ParseAddress(%q) = %q, %v; want an error with %q and the accepted forms", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseAddress(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestDialChecksTLS(t *testing.T) {
	for _, c := range []struct {
		tls TLS
		err string
	}{
		{TLS{Cert: "c.pem", Key: "k.pem"}, "needs the server's CA certificate"},
		{TLS{CACert: "ca.pem", Cert: "c.pem"}, "give both the client certificate"},
	} {
		_, err := Dial(context.Background(), "tcp://127.0.0.1:1234", c.tls)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("Dial with %+v: %v; want an error with %q", c.tls, err, c.err)
		}
	}
	c, err := Dial(context.Background(), "buildkit://unix:///nonexistent/buildkitd.sock", TLS{})
	if err != nil {
		t.Fatalf("Dial of a socket not there yet: %v (the connection is lazy)", err)
	}
	if c.Addr() != "unix:///nonexistent/buildkitd.sock" {
		t.Errorf("Addr() = %q", c.Addr())
	}
	c.Close()
}

func TestStatusMapper(t *testing.T) {
	t0 := time.Unix(100, 0)
	a, b, c := digest.FromString("a"), digest.FromString("b"), digest.FromString("c")
	m := newStatusMapper()
	var got []string
	add := func(s *client.SolveStatus) {
		for _, e := range m.Map(s) {
			name := map[digest.Digest]string{a: "a", b: "b", c: "c"}[e.Vertex]
			switch e.Kind {
			case VertexStarted:
				got = append(got, name+" started")
			case VertexCached:
				got = append(got, name+" cached")
			case VertexDone:
				got = append(got, name+" done")
			case VertexFailed:
				got = append(got, name+" failed: "+e.Err)
			case VertexLog:
				got = append(got, name+" log "+string(e.Data))
			}
		}
	}
	add(&client.SolveStatus{Vertexes: []*client.Vertex{{Digest: a, Cached: true, Started: &t0, Completed: &t0}, {Digest: b}}})
	add(&client.SolveStatus{Vertexes: []*client.Vertex{{Digest: a, Cached: true, Started: &t0, Completed: &t0}, {Digest: b, Started: &t0}}})
	add(&client.SolveStatus{Vertexes: []*client.Vertex{{Digest: b, Started: &t0}}, Logs: []*client.VertexLog{{Vertex: b, Data: []byte("hi\n"), Stream: 1}, {Vertex: b}}})
	add(&client.SolveStatus{Vertexes: []*client.Vertex{{Digest: b, Started: &t0, Completed: &t0}, {Digest: c, Completed: &t0, Error: "exit code: 2"}}})
	add(&client.SolveStatus{Vertexes: []*client.Vertex{{Digest: b, Started: &t0, Completed: &t0}}})
	want := []string{"a cached", "b started", "b log hi\n", "b done", "c started", "c failed: exit code: 2"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
}

func TestRewriteSources(t *testing.T) {
	ctx := context.Background()
	held := digest.FromString("held manifest")
	other := digest.FromString("not held")
	st := llb.Image("snapbuild.invalid/parent:latest@" + held.String())
	run := st.Run(llb.Shlex("true"), llb.AddMount("/other", llb.Image("docker.io/library/alpine:3@"+other.String()), llb.Readonly))
	run2 := run.Root().Run(llb.Shlex("true"), llb.AddMount("/ctx", llb.Local("context"), llb.Readonly), llb.AddMount("/tag", llb.Image("docker.io/library/debian:bookworm"), llb.Readonly))
	d, err := run2.Root().Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	def := d.ToPB()
	out, err := RewriteSources(def, func(d digest.Digest) bool { return d == held })
	if err != nil {
		t.Fatal(err)
	}
	g, err := build.Load(out)
	if err != nil {
		t.Fatalf("build.Load of the rewritten definition: %v", err)
	}
	var ids []string
	for _, dt := range out.Def {
		var op pb.Op
		if err := op.Unmarshal(dt); err != nil {
			t.Fatal(err)
		}
		if src := op.GetSource(); src != nil {
			ids = append(ids, src.Identifier)
			if strings.HasPrefix(src.Identifier, "oci-layout://") && src.Attrs[pb.AttrOCILayoutStoreID] != StoreID {
				t.Errorf("%s: store attribute %q, want %q", src.Identifier, src.Attrs[pb.AttrOCILayoutStoreID], StoreID)
			}
		}
	}
	want := map[string]bool{
		"oci-layout://snapbuild.invalid/parent@" + held.String():      true,
		"docker-image://docker.io/library/alpine:3@" + other.String(): true,
		"docker-image://docker.io/library/debian:bookworm":            true,
		"local://context": true,
	}
	if len(ids) != len(want) {
		t.Errorf("sources %q, want %d", ids, len(want))
	}
	for _, id := range ids {
		if !want[id] {
			t.Errorf("source %q not expected; want %v", id, want)
		}
	}
	if g.Target.Vertex == nil {
		t.Error("the rewritten definition has no target")
	}
	// The input definition is as it was.
	for _, dt := range def.Def {
		if bytes.Contains(dt, []byte("oci-layout://")) {
			t.Error("RewriteSources changed its input")
		}
	}
}

func TestExportStore(t *testing.T) {
	ctx := context.Background()
	blobs, err := oci.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	es := exportStore{blobStore{blobs}, tmp}
	have, err := blobs.WriteBlob("", []byte("a base layer"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := es.Writer(ctx, content.WithRef("x"), content.WithDescriptor(have)); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("Writer of a blob the store has: %v; want ErrAlreadyExists (never sent again)", err)
	}

	put := func(body string, desc ocispec.Descriptor) error {
		w, err := es.Writer(ctx, content.WithRef("ref"), content.WithDescriptor(desc))
		if err != nil {
			return err
		}
		if _, err := io.WriteString(w, body); err != nil {
			return err
		}
		return w.Commit(ctx, desc.Size, desc.Digest)
	}
	layer := []byte("a new layer")
	ld := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerZstd, Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	if err := put("a new layez", ld); !errors.Is(err, errdefs.ErrFailedPrecondition) || blobs.Has(ld.Digest) {
		t.Errorf("Commit of content that does not match its digest: %v, stored %v; want ErrFailedPrecondition and nothing stored", err, blobs.Has(ld.Digest))
	}
	if err := put("a new layer!", ocispec.Descriptor{Digest: digest.FromString("a new layer!"), Size: 3}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Commit of the wrong size: %v; want ErrFailedPrecondition", err)
	}
	if err := put(string(layer), ld); err != nil || !blobs.Has(ld.Digest) {
		t.Fatalf("Commit: %v, stored %v", err, blobs.Has(ld.Digest))
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	diffID := digest.FromString("uncompressed")
	cfg, _ := json.Marshal(ocispec.Image{RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString("base"), diffID}}})
	cd, _ := blobs.WriteBlob(ocispec.MediaTypeImageConfig, cfg)
	man, _ := json.Marshal(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cd, Layers: []ocispec.Descriptor{have, ld}})
	md, _ := blobs.WriteBlob(ocispec.MediaTypeImageManifest, man)
	resp := func(d ocispec.Descriptor) map[string]string {
		dt, _ := json.Marshal(d)
		return map[string]string{exptypes.ExporterImageDescriptorKey: base64.StdEncoding.EncodeToString(dt)}
	}
	res, err := readResult(resp(md), blobs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Digest != md.Digest || len(res.Layers) != 2 || res.Layers[1].Digest != ld.Digest || res.DiffIDs[1] != diffID {
		t.Errorf("readResult = %+v; want manifest %s, layers [%s %s]", res, md.Digest, have.Digest, ld.Digest)
	}
	if _, err := readResult(resp(ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: md.Digest}), blobs); err == nil || !strings.Contains(err.Error(), "not one image manifest") {
		t.Errorf("readResult of an index: %v", err)
	}
	if _, err := readResult(nil, blobs); err == nil || !strings.Contains(err.Error(), "named no image") {
		t.Errorf("readResult of an empty response: %v", err)
	}
}

func TestContentStore(t *testing.T) {
	ctx := context.Background()
	blobs, err := oci.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	desc, err := blobs.WriteBlob("", []byte("hello blob"))
	if err != nil {
		t.Fatal(err)
	}
	cs := ContentStore(blobs)
	info, err := cs.Info(ctx, desc.Digest)
	if err != nil || info.Size != desc.Size || info.Digest != desc.Digest {
		t.Errorf("Info = %+v, %v; want size %d", info, err, desc.Size)
	}
	ra, err := cs.ReaderAt(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
	ra.Close()
	if err != nil || string(b) != "hello blob" {
		t.Errorf("ReaderAt read %q, %v", b, err)
	}
	missing := digest.FromString("missing")
	if _, err := cs.Info(ctx, missing); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Info of a missing blob: %v; want ErrNotFound", err)
	}
	if _, err := cs.ReaderAt(ctx, ocispec.Descriptor{Digest: missing}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("ReaderAt of a missing blob: %v; want ErrNotFound", err)
	}
	if _, err := cs.Writer(ctx); !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("Writer: %v; want ErrNotImplemented", err)
	}
	if err := cs.Delete(ctx, desc.Digest); !errors.Is(err, errdefs.ErrNotImplemented) || !blobs.Has(desc.Digest) {
		t.Errorf("Delete: %v; want ErrNotImplemented and the blob kept", err)
	}
}
