package engine

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/registry"
)

// TestExportWithDefaults: each destination gets its default compression
// (oci: as stored, zstd; oci-archive: and docker-archive: gzip), and OCI
// outputs carry the image's full name in their index.
func TestExportWithDefaults(t *testing.T) {
	b := uBuilder(t)
	st := uRootState(t, b)
	res := uExecLayer(t, b, st, DebianSlim("3.11").last())
	if err := b.Tag("hello", res.ID); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir := t.TempDir()
	const full = "docker.io/library/hello:latest"
	for _, tc := range []struct {
		dest, comp string
		layer      types.MediaType
		ann        map[string]string // the index entry's annotations
	}{
		{dest: "oci:" + dir + "/layout", layer: types.OCILayerZStd,
			ann: map[string]string{registry.AnnotationRefName: full, registry.AnnotationImageName: full}},
		{dest: "oci:" + dir + "/layout-gz:v2", comp: "gzip", layer: types.OCILayer,
			ann: map[string]string{registry.AnnotationRefName: "v2", registry.AnnotationImageName: "docker.io/library/hello:v2"}},
		{dest: "oci-archive:" + dir + "/a.tar", layer: types.OCILayer,
			ann: map[string]string{registry.AnnotationRefName: full, registry.AnnotationImageName: full}},
		{dest: "oci-archive:" + dir + "/z.tar:registry.local:5000/team/hello:1", comp: "zstd", layer: types.OCILayerZStd,
			ann: map[string]string{registry.AnnotationRefName: "registry.local:5000/team/hello:1", registry.AnnotationImageName: "registry.local:5000/team/hello:1"}},
		{dest: "docker-archive:" + dir + "/d.tar", layer: types.DockerLayer},
	} {
		if err := b.ExportWith(ctx, "hello", tc.dest, ExportOptions{Compression: tc.comp}); err != nil {
			t.Errorf("ExportWith(%s, %q) = %v", tc.dest, tc.comp, err)
			continue
		}
		r, err := registry.ParseReference(tc.dest)
		if err != nil {
			t.Fatal(err)
		}
		img, err := registry.Pull(ctx, r)
		if err != nil {
			t.Errorf("reading back %s: %v", tc.dest, err)
			continue
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range m.Layers {
			if l.MediaType != tc.layer {
				t.Errorf("%s (compression %q): layer %s is %s, want %s", tc.dest, tc.comp, l.Digest, l.MediaType, tc.layer)
			}
		}
		if r.Transport == registry.DockerArchive {
			continue
		}
		idx := readIndex(t, r)
		if len(idx.Manifests) != 1 || !maps.Equal(idx.Manifests[0].Annotations, tc.ann) {
			t.Errorf("%s: index entries %+v, want one annotated %v", tc.dest, idx.Manifests, tc.ann)
		}
	}
	// Given by ID, the image has no name to record.
	if err := b.ExportWith(ctx, res.ID, "oci-archive:"+dir+"/id.tar", ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if idx := readIndex(t, registry.Reference{Transport: registry.OCIArchive, Path: dir + "/id.tar"}); len(idx.Manifests) != 1 || idx.Manifests[0].Annotations != nil {
		t.Errorf("export by ID: index entries %+v, want one without annotations", idx.Manifests)
	}
	// snapbuild save's layout (Export) is unchanged: tagged with the name.
	if err := b.Export("hello", "oci:"+dir+"/saved:hello"); err != nil {
		t.Fatal(err)
	}
	if names, err := registry.LayoutNames(dir + "/saved"); err != nil || len(names) != 1 || names[0] != "hello" {
		t.Errorf("LayoutNames of a saved layout = %q, %v", names, err)
	}

	for _, tc := range []struct{ dest, comp, want string }{
		{"docker-archive:" + dir + "/dz.tar", "zstd", "drop --compression zstd, or export zstd layers to oci-archive:FILE"},
		{"oci:" + dir + "/x", "lz4", `compression "lz4" (--compression): choose gzip or zstd`},
		{"oci-archive:" + dir + "/c.tar", "zstd:chunked", "skopeo copy --dest-compress-format zstd:chunked"},
	} {
		err := b.ExportWith(ctx, "hello", tc.dest, ExportOptions{Compression: tc.comp})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ExportWith(%s, %q) = %v, want an error containing %q", tc.dest, tc.comp, err, tc.want)
		}
		if _, serr := os.Stat(strings.SplitN(tc.dest, ":", 3)[1]); serr == nil {
			t.Errorf("ExportWith(%s, %q) failed but wrote its destination", tc.dest, tc.comp)
		}
	}
	// A push's bad value is refused before the registry is contacted.
	err := b.Push(ctx, "hello", "127.0.0.1:1/team/hello:1", ExportOptions{Compression: "gz"})
	if want := `push 127.0.0.1:1/team/hello:1: compression "gz" (--compression): choose gzip or zstd`; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Push with compression gz = %v, want %q...", err, want)
	}
}

// readIndex reads the index.json of an OCI layout or archive.
func readIndex(t *testing.T, r registry.Reference) ocispec.Index {
	t.Helper()
	var raw []byte
	var err error
	if r.Transport == registry.OCIArchive {
		raw, err = exec.Command("tar", "-xOf", r.Path, "index.json").Output()
	} else {
		raw, err = os.ReadFile(filepath.Join(r.Path, "index.json"))
	}
	if err != nil {
		t.Fatalf("index.json of %s: %v", r.Path, err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatalf("index.json of %s: %v", r.Path, err)
	}
	return idx
}
