package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func newTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// blobFiles lists the names in blobs/sha256.
func blobFiles(t *testing.T, s *Store) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.Root(), "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestStoreWriteReadBlob(t *testing.T) {
	s := newTestStore(t)
	data := []byte(`{"hello":"world"}`)
	desc, err := s.WriteBlob("application/json", data)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != digest.FromBytes(data) || desc.Size != int64(len(data)) || desc.MediaType != "application/json" {
		t.Errorf("descriptor = %+v", desc)
	}
	if !s.Has(desc.Digest) {
		t.Error("Has = false after WriteBlob")
	}
	if s.Has(digest.FromString("other")) {
		t.Error("Has = true for a blob never written")
	}
	want := filepath.Join(s.Root(), "blobs", "sha256", desc.Digest.Encoded())
	if s.Path(desc.Digest) != want {
		t.Errorf("Path = %q, want %q", s.Path(desc.Digest), want)
	}
	fi, err := os.Stat(want)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o444 {
		t.Errorf("blob mode %v, want read-only 0444", fi.Mode())
	}
	got, err := s.ReadBlob(desc.Digest)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("ReadBlob = %q, %v", got, err)
	}
	// Writing again is a no-op with the same descriptor.
	desc2, err := s.WriteBlob("application/json", data)
	if err != nil || !reflect.DeepEqual(desc2, desc) {
		t.Errorf("second WriteBlob = %+v, %v", desc2, err)
	}
	if names := blobFiles(t, s); len(names) != 1 {
		t.Errorf("blobs dir = %q, want just the one blob (no temporary files)", names)
	}
	// Empty blob.
	e, err := s.WriteBlob("x", nil)
	if err != nil || e.Digest != digest.FromBytes(nil) || e.Size != 0 {
		t.Errorf("empty blob: %+v %v", e, err)
	}
	if b, err := s.ReadBlob(e.Digest); err != nil || len(b) != 0 {
		t.Errorf("read empty blob: %q %v", b, err)
	}
}

func TestStoreMissingAndCorruptBlob(t *testing.T) {
	s := newTestStore(t)
	missing := digest.FromString("missing")
	_, err := s.ReadBlob(missing)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing blob: %v, want an error wrapping os.ErrNotExist", err)
	}
	if _, err := s.Open("sha256:nothex"); err == nil {
		t.Error("Open of an invalid digest: no error")
	}
	if _, err := s.ReadBlob(""); err == nil {
		t.Error("ReadBlob(\"\"): no error")
	}

	desc, err := s.WriteBlob("text/plain", []byte("original content"))
	if err != nil {
		t.Fatal(err)
	}
	p := s.Path(desc.Digest)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("tampered content"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = s.ReadBlob(desc.Digest)
	if want := "oci store: blob " + desc.Digest.String() + " is corrupt: its content does not match its digest"; err == nil || err.Error() != want {
		t.Errorf("corrupt blob: %v, want %q", err, want)
	}
	var v any
	if err := s.ReadJSON(desc.Digest, &v); err == nil || !strings.Contains(err.Error(), "is corrupt") {
		t.Errorf("ReadJSON of a corrupt blob: %v", err)
	}
	// A truncated blob is corrupt too.
	if err := os.WriteFile(p, []byte("orig"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadBlob(desc.Digest); err == nil {
		t.Error("truncated blob: no error")
	}
}

func TestStoreJSONAndManifest(t *testing.T) {
	s := newTestStore(t)
	type doc struct {
		A string `json:"a"`
		B []int  `json:"b"`
	}
	desc, err := s.WriteJSON("application/vnd.test+json", doc{"x", []int{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := s.ReadBlob(desc.Digest)
	if string(raw) != `{"a":"x","b":[1,2]}` {
		t.Errorf("stored JSON = %s", raw)
	}
	var got doc
	if err := s.ReadJSON(desc.Digest, &got); err != nil || got.A != "x" || len(got.B) != 2 {
		t.Errorf("ReadJSON = %+v, %v", got, err)
	}
	// Manifest refuses other media types.
	idx, err := s.WriteJSON(ocispec.MediaTypeImageIndex, ocispec.Index{MediaType: ocispec.MediaTypeImageIndex})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Manifest(idx.Digest); err == nil || !strings.Contains(err.Error(), "not an image manifest") {
		t.Errorf("Manifest of an index: %v", err)
	}
	// ReadJSON of non-JSON.
	bad, _ := s.WriteBlob("text/plain", []byte("not json"))
	if err := s.ReadJSON(bad.Digest, &got); err == nil {
		t.Error("ReadJSON of non-JSON: no error")
	}
}

func TestStoreCleanTemp(t *testing.T) {
	s := newTestStore(t)
	keep, _ := s.WriteBlob("x", []byte("keep"))
	dir := filepath.Join(s.Root(), "blobs", "sha256")
	for _, n := range []string{".tmp-123", ".tmp-abc"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CleanTemp(); err != nil {
		t.Fatal(err)
	}
	names := blobFiles(t, s)
	if len(names) != 1 || names[0] != keep.Digest.Encoded() {
		t.Errorf("after CleanTemp: %q", names)
	}
}

// ---- layers ----

func makeTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range []string{"etc/", "etc/hostname", "usr/bin/tool", "big"} {
		content, ok := files[name]
		if !ok {
			continue
		}
		h := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if strings.HasSuffix(name, "/") {
			h = &tar.Header{Name: name, Mode: 0o755, Typeflag: tar.TypeDir, Format: tar.FormatPAX}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(content)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sampleTar(t *testing.T) []byte {
	return makeTar(t, map[string]string{
		"etc/":         "",
		"etc/hostname": "snap\n",
		"usr/bin/tool": "#!/bin/sh\necho tool\n",
		"big":          strings.Repeat("compressible line of text\n", 5000),
	})
}

func writeLayer(t *testing.T, s *Store, data []byte) Layer {
	t.Helper()
	l, err := s.WriteLayer(context.Background(), func(w io.Writer) error {
		// Several writes, as a streaming tar writer makes.
		for i := 0; i < len(data); i += 1000 {
			end := min(i+1000, len(data))
			if _, err := w.Write(data[i:end]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestWriteLayer(t *testing.T) {
	s := newTestStore(t)
	data := sampleTar(t)
	l := writeLayer(t, s, data)

	if l.DiffID != digest.FromBytes(data) {
		t.Errorf("DiffID = %s, want sha256 of the tar %s", l.DiffID, digest.FromBytes(data))
	}
	if l.UncompressedSize != int64(len(data)) {
		t.Errorf("UncompressedSize = %d, want %d", l.UncompressedSize, len(data))
	}
	if l.Descriptor.MediaType != "application/vnd.oci.image.layer.v1.tar+zstd" {
		t.Errorf("media type = %q", l.Descriptor.MediaType)
	}
	blob, err := s.ReadBlob(l.Descriptor.Digest) // verifies digest = sha256(blob)
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(blob) != l.Descriptor.Digest || int64(len(blob)) != l.Descriptor.Size {
		t.Errorf("descriptor %+v does not describe the %d-byte blob", l.Descriptor, len(blob))
	}
	if l.Descriptor.Digest == l.DiffID {
		t.Error("blob digest equals the diffID: the blob is not compressed")
	}
	if len(blob) >= len(data) {
		t.Errorf("blob (%d bytes) not smaller than the tar (%d bytes)", len(blob), len(data))
	}
	if !bytes.HasPrefix(blob, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Errorf("blob does not start with the zstd magic: % x", blob[:4])
	}
	dec, err := zstd.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	out, err := io.ReadAll(dec)
	if err != nil {
		t.Fatalf("decompress: %v", err)
	}
	if !bytes.Equal(out, data) {
		t.Fatal("decompressed blob differs from the tar")
	}
	// The tar inside is readable.
	tr := tar.NewReader(bytes.NewReader(out))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if strings.Join(names, ",") != "etc/,etc/hostname,usr/bin/tool,big" {
		t.Errorf("tar entries = %q", names)
	}

	// Same tar, same blob: in this store and in another one.
	if l2 := writeLayer(t, s, data); !reflect.DeepEqual(l2, l) {
		t.Errorf("second write: %+v, want %+v", l2, l)
	}
	if l3 := writeLayer(t, newTestStore(t), data); !reflect.DeepEqual(l3, l) {
		t.Errorf("write in another store: %+v, want %+v", l3, l)
	}
	if n := len(blobFiles(t, s)); n != 1 {
		t.Errorf("%d files in blobs/sha256, want 1", n)
	}
	// A different tar, a different layer.
	other := writeLayer(t, s, makeTar(t, map[string]string{"etc/hostname": "other\n"}))
	if other.DiffID == l.DiffID || other.Descriptor.Digest == l.Descriptor.Digest {
		t.Error("different tars gave the same layer")
	}
}

func TestWriteLayerEmptyStream(t *testing.T) {
	s := newTestStore(t)
	l, err := s.WriteLayer(context.Background(), func(io.Writer) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if l.DiffID != digest.FromBytes(nil) || l.UncompressedSize != 0 || !s.Has(l.Descriptor.Digest) {
		t.Errorf("empty layer = %+v", l)
	}
}

func TestWriteLayerFailureStoresNothing(t *testing.T) {
	s := newTestStore(t)
	boom := errors.New("boom")
	_, err := s.WriteLayer(context.Background(), func(w io.Writer) error {
		w.Write(sampleTar(t))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("error = %v, want the writer's error", err)
	}
	if names := blobFiles(t, s); len(names) != 0 {
		t.Errorf("failed write left %q", names)
	}

	ctx, cancel := context.WithCancel(context.Background())
	_, err = s.WriteLayer(ctx, func(w io.Writer) error {
		w.Write(sampleTar(t))
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: error = %v, want context.Canceled", err)
	}
	if names := blobFiles(t, s); len(names) != 0 {
		t.Errorf("cancelled write left %q", names)
	}
}

// ---- images ----

func TestWriteImage(t *testing.T) {
	s := newTestStore(t)
	l := writeLayer(t, s, sampleTar(t))
	cfg := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		Config:   ocispec.ImageConfig{Env: []string{"A=1"}, Cmd: []string{"sh"}},
		RootFS:   ocispec.RootFS{DiffIDs: []digest.Digest{l.DiffID}}, // Type filled in
	}
	mdesc, err := s.WriteImage(cfg, []ocispec.Descriptor{l.Descriptor})
	if err != nil {
		t.Fatal(err)
	}
	if mdesc.MediaType != ocispec.MediaTypeImageManifest {
		t.Errorf("manifest descriptor media type %q", mdesc.MediaType)
	}
	m, err := s.Manifest(mdesc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if m.SchemaVersion != 2 || m.MediaType != ocispec.MediaTypeImageManifest || m.Config.MediaType != ocispec.MediaTypeImageConfig {
		t.Errorf("manifest = %+v", m)
	}
	if len(m.Layers) != 1 || !reflect.DeepEqual(m.Layers[0], l.Descriptor) {
		t.Errorf("layers = %+v", m.Layers)
	}
	got, err := s.Config(m)
	if err != nil {
		t.Fatal(err)
	}
	if got.RootFS.Type != "layers" || got.Config.Cmd[0] != "sh" || got.RootFS.DiffIDs[0] != l.DiffID {
		t.Errorf("config = %+v", got)
	}
	// Deterministic.
	if again, _ := s.WriteImage(cfg, []ocispec.Descriptor{l.Descriptor}); !reflect.DeepEqual(again, mdesc) {
		t.Errorf("second WriteImage = %+v, want %+v", again, mdesc)
	}
	// Count mismatch.
	if _, err := s.WriteImage(cfg, nil); err == nil || err.Error() != "oci image: config lists 1 diffIDs for 0 layers" {
		t.Errorf("mismatch: %v", err)
	}
	// No layers: "layers": [] in the manifest.
	empty, err := s.WriteImage(ocispec.Image{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := s.ReadBlob(empty.Digest)
	if !bytes.Contains(raw, []byte(`"layers":[]`)) {
		t.Errorf("empty manifest = %s", raw)
	}
}

func TestWriteBlobFrom(t *testing.T) {
	s, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("layer bytes")
	d := digest.FromBytes(data)
	desc, err := s.WriteBlobFrom("application/octet-stream", bytes.NewReader(data), d, int64(len(data)))
	if err != nil || desc.Digest != d || desc.Size != int64(len(data)) || !s.Has(d) {
		t.Fatalf("WriteBlobFrom = %+v, %v", desc, err)
	}
	// Present: not read again.
	if desc, err := s.WriteBlobFrom("x", iotest.ErrReader(errors.New("read")), d, -1); err != nil || desc.Size != int64(len(data)) {
		t.Errorf("present blob: %+v, %v", desc, err)
	}
	other := digest.FromString("something else")
	_, err = s.WriteBlobFrom("x", bytes.NewReader(data), other, -1)
	if err == nil || !strings.Contains(err.Error(), "digest mismatch") || !strings.Contains(err.Error(), other.String()) {
		t.Errorf("tampered blob: %v", err)
	}
	if s.Has(other) {
		t.Error("a blob with the wrong content was stored")
	}
	_, err = s.WriteBlobFrom("x", bytes.NewReader([]byte("abc")), digest.FromString("abc"), 4)
	if err == nil || !strings.Contains(err.Error(), "size mismatch") {
		t.Errorf("short blob: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "blobs", "sha256")); len(ents) != 1 {
		t.Errorf("blobs dir holds %d entries, want 1 (no temp files left)", len(ents))
	}
}

func TestStoreRemoveWalk(t *testing.T) {
	s := newTestStore(t)
	a, err := s.WriteBlob("text/plain", []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.WriteBlob("text/plain", []byte("bb"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.newWriter() // a writer cut short: not a blob
	if err != nil {
		t.Fatal(err)
	}
	defer w.abort()
	got := map[digest.Digest]int64{}
	if err := s.Walk(func(d digest.Digest, size int64) error { got[d] = size; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[a.Digest] != 1 || got[b.Digest] != 2 {
		t.Errorf("Walk = %v, want %s: 1 and %s: 2", got, a.Digest, b.Digest)
	}
	if err := s.Remove(a.Digest); err != nil {
		t.Fatal(err)
	}
	if s.Has(a.Digest) || !s.Has(b.Digest) {
		t.Error("Remove(a) did not remove a alone")
	}
	if err := s.Remove(a.Digest); err != nil {
		t.Errorf("Remove of a missing blob = %v, want nil", err)
	}
	if err := s.Remove("sha256:nothex"); err == nil {
		t.Error("Remove of an invalid digest = nil error")
	}
}
