package oci

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// testImage stores an image with one layer and returns its manifest
// descriptor and the layer.
func testImage(t *testing.T, s *Store, env string) (ocispec.Descriptor, Layer) {
	t.Helper()
	l := writeLayer(t, s, makeTar(t, map[string]string{"etc/hostname": env + "\n"}))
	cfg := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		Config:   ocispec.ImageConfig{Env: []string{"PATH=/usr/bin:/bin", "WHICH=" + env}, Cmd: []string{"sleep", "172800"}, WorkingDir: "/work"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{l.DiffID}},
		History:  []ocispec.History{{CreatedBy: "RUN echo " + env, Comment: "snapbuild"}},
	}
	m, err := s.WriteImage(cfg, []ocispec.Descriptor{l.Descriptor})
	if err != nil {
		t.Fatal(err)
	}
	return m, l
}

// skopeoPath returns skopeo, or skips (fails under CI=true) when it is missing.
func skopeoPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("skopeo")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("skopeo is not installed (required when CI=true)")
		}
		t.Skip("skopeo is not installed")
	}
	return p
}

type skopeoInspect struct {
	Digest       string
	Architecture string
	Os           string
	Layers       []string
	Env          []string
	LayersData   []struct {
		MIMEType string
		Digest   string
		Size     int64
	}
}

func runSkopeoInspect(t *testing.T, ref string) skopeoInspect {
	t.Helper()
	cmd := exec.Command(skopeoPath(t), "inspect", ref)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, stderr.String())
	}
	var res skopeoInspect
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("skopeo inspect %s: bad JSON: %v\n%s", ref, err, out)
	}
	return res
}

// skopeoCopy copies src to a dir: destination, which makes skopeo read and
// verify every blob against its digest.
func skopeoCopy(t *testing.T, src string) string {
	t.Helper()
	tmp := t.TempDir()
	policy := filepath.Join(tmp, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(tmp, "copy")
	cmd := exec.Command(skopeoPath(t), "--policy", policy, "copy", "--quiet", src, "dir:"+dst)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy %s: %v\n%s", src, err, out)
	}
	if _, err := os.Stat(filepath.Join(dst, "manifest.json")); err != nil {
		t.Errorf("skopeo copy %s: no manifest.json in the copy: %v", src, err)
	}
	return dst
}

func checkInspect(t *testing.T, got skopeoInspect, m ocispec.Descriptor, l Layer, which string) {
	t.Helper()
	if got.Digest != m.Digest.String() {
		t.Errorf("skopeo digest %s, want %s", got.Digest, m.Digest)
	}
	if got.Os != "linux" || got.Architecture != "amd64" {
		t.Errorf("platform %s/%s", got.Os, got.Architecture)
	}
	if !reflect.DeepEqual(got.Layers, []string{l.Descriptor.Digest.String()}) {
		t.Errorf("layers %q, want [%s]", got.Layers, l.Descriptor.Digest)
	}
	// LayersData is only in newer skopeo versions' output.
	if got.LayersData != nil && (len(got.LayersData) != 1 || got.LayersData[0].MIMEType != ocispec.MediaTypeImageLayerZstd || got.LayersData[0].Size != l.Descriptor.Size) {
		t.Errorf("layers data %+v", got.LayersData)
	}
	if !reflect.DeepEqual(got.Env, []string{"PATH=/usr/bin:/bin", "WHICH=" + which}) {
		t.Errorf("env %q", got.Env)
	}
}

func readIndex(t *testing.T, dir string) ocispec.Index {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

func checkLayoutFile(t *testing.T, data []byte) {
	t.Helper()
	var v struct {
		ImageLayoutVersion string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(data, &v); err != nil || v.ImageLayoutVersion != "1.0.0" {
		t.Errorf("oci-layout = %s (%v)", data, err)
	}
}

func TestExportLayout(t *testing.T) {
	s := newTestStore(t)
	m, l := testImage(t, s, "one")
	dir := filepath.Join(t.TempDir(), "layout")
	ref, err := ParseReference("oci:" + dir + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Export(m, ref); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "oci-layout"))
	if err != nil {
		t.Fatal(err)
	}
	checkLayoutFile(t, b)
	idx := readIndex(t, dir)
	if idx.SchemaVersion != 2 || idx.MediaType != ocispec.MediaTypeImageIndex || len(idx.Manifests) != 1 {
		t.Fatalf("index = %+v", idx)
	}
	e := idx.Manifests[0]
	if e.Digest != m.Digest || e.Size != m.Size || e.MediaType != ocispec.MediaTypeImageManifest {
		t.Errorf("index entry = %+v, want manifest %+v", e, m)
	}
	if !reflect.DeepEqual(e.Annotations, map[string]string{"org.opencontainers.image.ref.name": "v1"}) {
		t.Errorf("annotations = %v", e.Annotations)
	}
	// Every blob is there with the right content.
	mm, _ := s.Manifest(m.Digest)
	for _, d := range []digest.Digest{m.Digest, mm.Config.Digest, l.Descriptor.Digest} {
		data, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", d.Encoded()))
		if err != nil {
			t.Errorf("blob %s: %v", d, err)
			continue
		}
		if digest.FromBytes(data) != d {
			t.Errorf("blob %s has wrong content", d)
		}
	}
	checkInspect(t, runSkopeoInspect(t, "oci:"+dir+":v1"), m, l, "one")
	cp := skopeoCopy(t, "oci:"+dir+":v1")
	if b, err := os.ReadFile(filepath.Join(cp, l.Descriptor.Digest.Encoded())); err != nil || digest.FromBytes(b) != l.Descriptor.Digest {
		t.Errorf("skopeo's copy of the layer: %v", err)
	}

	// Exporting again with the same tag is idempotent.
	if err := s.Export(m, ref); err != nil {
		t.Fatal(err)
	}
	if idx := readIndex(t, dir); len(idx.Manifests) != 1 {
		t.Errorf("re-export: %d index entries, want 1", len(idx.Manifests))
	}
}

func TestExportLayoutKeepsOtherTags(t *testing.T) {
	s := newTestStore(t)
	m1, l1 := testImage(t, s, "one")
	m2, l2 := testImage(t, s, "two")
	dir := filepath.Join(t.TempDir(), "layout")
	export := func(m ocispec.Descriptor, dest string) {
		t.Helper()
		ref, err := ParseReference(dest)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Export(m, ref); err != nil {
			t.Fatalf("export %s: %v", dest, err)
		}
	}
	export(m1, "oci:"+dir+":one")
	export(m2, "oci:"+dir+":two")
	tags := func() map[string]digest.Digest {
		out := map[string]digest.Digest{}
		for _, e := range readIndex(t, dir).Manifests {
			out[e.Annotations[ocispec.AnnotationRefName]] = e.Digest
		}
		return out
	}
	if got := tags(); !reflect.DeepEqual(got, map[string]digest.Digest{"one": m1.Digest, "two": m2.Digest}) {
		t.Errorf("tags = %v", got)
	}
	checkInspect(t, runSkopeoInspect(t, "oci:"+dir+":one"), m1, l1, "one")
	checkInspect(t, runSkopeoInspect(t, "oci:"+dir+":two"), m2, l2, "two")

	// Moving a tag replaces its entry and keeps the other.
	export(m2, "oci:"+dir+":one")
	if got := tags(); !reflect.DeepEqual(got, map[string]digest.Digest{"one": m2.Digest, "two": m2.Digest}) {
		t.Errorf("after moving tag one: %v", got)
	}
	// Untagged export adds one untagged entry, once.
	export(m1, "oci:"+dir)
	export(m1, "oci:"+dir)
	idx := readIndex(t, dir)
	untagged := 0
	for _, e := range idx.Manifests {
		if e.Annotations[ocispec.AnnotationRefName] == "" {
			untagged++
			if e.Digest != m1.Digest {
				t.Errorf("untagged entry %s, want %s", e.Digest, m1.Digest)
			}
		}
	}
	if untagged != 1 || len(idx.Manifests) != 3 {
		t.Errorf("index has %d entries, %d untagged; want 3 and 1: %+v", len(idx.Manifests), untagged, idx.Manifests)
	}
}

func TestExportLayoutKeepsForeignEntries(t *testing.T) {
	s := newTestStore(t)
	m, _ := testImage(t, s, "one")
	dir := t.TempDir()
	foreign := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + digest.FromString("foreign").String() +
		`","size":7,"annotations":{"org.opencontainers.image.ref.name":"theirs","com.example.note":"kept"}}]}`
	if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte(foreign), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Export(m, Reference{Transport: TransportLayout, Path: dir, Tag: "mine"}); err != nil {
		t.Fatal(err)
	}
	idx := readIndex(t, dir)
	if len(idx.Manifests) != 2 {
		t.Fatalf("index entries = %+v", idx.Manifests)
	}
	if e := idx.Manifests[0]; e.Digest != digest.FromString("foreign") || e.Annotations["com.example.note"] != "kept" || e.Annotations[ocispec.AnnotationRefName] != "theirs" {
		t.Errorf("foreign entry = %+v", e)
	}
	if e := idx.Manifests[1]; e.Digest != m.Digest || e.Annotations[ocispec.AnnotationRefName] != "mine" {
		t.Errorf("new entry = %+v", e)
	}
}

func TestExportArchive(t *testing.T) {
	s := newTestStore(t)
	m, l := testImage(t, s, "arch")
	file := filepath.Join(t.TempDir(), "image.tar")
	ref, err := ParseReference("oci-archive:" + file + ":latest")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Export(m, ref); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("archive mode %v", fi.Mode())
	}
	if ents, _ := os.ReadDir(filepath.Dir(file)); len(ents) != 1 {
		t.Errorf("export left temporary files: %v", ents)
	}
	// The archive's members.
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	members := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		members[h.Name] = data
	}
	mm, _ := s.Manifest(m.Digest)
	var names []string
	for n := range members {
		names = append(names, n)
	}
	sort.Strings(names)
	want := []string{"blobs/", "blobs/sha256/", "blobs/sha256/" + m.Digest.Encoded(), "blobs/sha256/" + mm.Config.Digest.Encoded(),
		"blobs/sha256/" + l.Descriptor.Digest.Encoded(), "index.json", "oci-layout"}
	sort.Strings(want)
	if !reflect.DeepEqual(names, want) {
		t.Errorf("members:\n got  %q\n want %q", names, want)
	}
	for _, n := range names {
		if enc, ok := strings.CutPrefix(n, "blobs/sha256/"); ok && enc != "" {
			if digest.FromBytes(members[n]).Encoded() != enc {
				t.Errorf("member %s has wrong content", n)
			}
		}
	}
	checkLayoutFile(t, members["oci-layout"])
	var idx ocispec.Index
	if err := json.Unmarshal(members["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != m.Digest ||
		idx.Manifests[0].Annotations[ocispec.AnnotationRefName] != "latest" || idx.MediaType != ocispec.MediaTypeImageIndex {
		t.Errorf("index = %+v", idx)
	}

	checkInspect(t, runSkopeoInspect(t, "oci-archive:"+file+":latest"), m, l, "arch")
	skopeoCopy(t, "oci-archive:"+file+":latest")

	// Without a tag: no annotation, and skopeo takes the only image.
	file2 := filepath.Join(filepath.Dir(file), "untagged.tar")
	if err := s.Export(m, Reference{Transport: TransportArchive, Path: file2}); err != nil {
		t.Fatal(err)
	}
	checkInspect(t, runSkopeoInspect(t, "oci-archive:"+file2), m, l, "arch")
}

func TestExportErrors(t *testing.T) {
	s := newTestStore(t)
	missing := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("no such manifest"), Size: 16}
	dir := filepath.Join(t.TempDir(), "layout")
	err := s.Export(missing, Reference{Transport: TransportLayout, Path: dir, Tag: "x"})
	if err == nil || !strings.Contains(err.Error(), missing.Digest.String()) {
		t.Errorf("layout export of a missing image: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
		t.Error("failed export wrote index.json")
	}
	file := filepath.Join(t.TempDir(), "x.tar")
	err = s.Export(missing, Reference{Transport: TransportArchive, Path: file, Tag: "x"})
	if err == nil || !strings.Contains(err.Error(), missing.Digest.String()) {
		t.Errorf("archive export of a missing image: %v", err)
	}
	if _, err := os.Stat(file); err == nil {
		t.Error("failed export wrote the archive")
	}
	// A missing layer blob is an error too, and leaves no archive.
	m, l := testImage(t, s, "x")
	if err := os.Remove(s.Path(l.Descriptor.Digest)); err != nil {
		t.Fatal(err)
	}
	err = s.Export(m, Reference{Transport: TransportArchive, Path: file, Tag: "x"})
	if err == nil {
		t.Error("archive export with a missing layer: no error")
	}
	if ents, _ := os.ReadDir(filepath.Dir(file)); len(ents) != 0 {
		t.Errorf("failed archive export left %v", ents)
	}
	err = s.Export(m, Reference{Transport: TransportLayout, Path: dir})
	if err == nil {
		t.Error("layout export with a missing layer: no error")
	}
	// Archive into a missing directory.
	m2, _ := testImage(t, s, "y")
	if err := s.Export(m2, Reference{Transport: TransportArchive, Path: filepath.Join(t.TempDir(), "no", "dir", "x.tar")}); err == nil {
		t.Error("archive into a missing directory: no error")
	}
	if err := s.Export(m2, Reference{Transport: "docker", Path: "x"}); err == nil || err.Error() != `export: unknown transport "docker"` {
		t.Errorf("unknown transport: %v", err)
	}
	// A corrupt existing index.json is reported, not overwritten.
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "index.json"), []byte("{not json"), 0o644)
	if err := s.Export(m2, Reference{Transport: TransportLayout, Path: bad, Tag: "t"}); err == nil || !strings.Contains(err.Error(), "existing index.json") {
		t.Errorf("corrupt index.json: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(bad, "index.json")); string(b) != "{not json" {
		t.Errorf("corrupt index.json was overwritten: %s", b)
	}
}
