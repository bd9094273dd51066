package registry

import (
	"archive/tar"
	"os"
	"path/filepath"
	"testing"
)

// writeTar writes a tar at p holding files (name → content).
func writeTar(t *testing.T, p string, files map[string]string) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for n, c := range files {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSourceName(t *testing.T) {
	dir := t.TempDir()
	const desc = `"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000", "size": 1`
	index := func(entries ...string) string {
		s := `{"schemaVersion": 2, "manifests": [`
		for i, e := range entries {
			if i > 0 {
				s += ","
			}
			s += "{" + desc + `, "annotations": {` + e + "}}"
		}
		return s + "]}"
	}
	// An oci-archive as snapbuild export writes it without :TAG.
	writeTar(t, filepath.Join(dir, "named.tar"), map[string]string{"index.json": index(
		`"org.opencontainers.image.ref.name": "docker.io/library/hello:latest", "io.containerd.image.name": "docker.io/library/hello:latest"`)})
	// As skopeo writes oci-archive:FILE:latest: a bare tag, no name.
	writeTar(t, filepath.Join(dir, "bare.tar"), map[string]string{"index.json": index(`"org.opencontainers.image.ref.name": "latest"`)})
	// An OCI layout with two images, one a name in ref.name only.
	layout := filepath.Join(dir, "layout")
	if err := os.MkdirAll(layout, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(layout, "index.json"), []byte(index(
		`"org.opencontainers.image.ref.name": "v1"`,
		`"org.opencontainers.image.ref.name": "registry.local:5000/team/app:v2"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	writeTar(t, filepath.Join(dir, "docker.tar"), map[string]string{"manifest.json": `[{"Config": "c.json", "RepoTags": ["hello:v3"], "Layers": []}]`})
	writeTar(t, filepath.Join(dir, "untagged.tar"), map[string]string{"manifest.json": `[{"Config": "c.json", "RepoTags": null, "Layers": []}]`})

	for _, tc := range []struct{ ref, want string }{
		{"oci-archive:" + dir + "/named.tar", "hello:latest"},
		{"oci-archive:" + dir + "/named.tar:docker.io/library/hello:latest", "hello:latest"},
		{"oci-archive:" + dir + "/bare.tar", ""},
		{"oci-archive:" + dir + "/bare.tar:latest", ""},
		{"oci:" + layout + ":v1", ""},
		{"oci:" + layout + ":registry.local:5000/team/app:v2", "registry.local:5000/team/app:v2"},
		{"oci:" + layout + ":v9", ""},
		{"docker-archive:" + dir + "/docker.tar", "hello:v3"},
		{"docker-archive:" + dir + "/docker.tar:other/name:v4", "other/name:v4"},
		{"docker-archive:" + dir + "/untagged.tar", ""},
		{"ubuntu:22.04", "ubuntu:22.04"},
	} {
		ref, err := ParseReference(tc.ref)
		if err != nil {
			t.Fatalf("%s: %v", tc.ref, err)
		}
		got, err := SourceName(ref)
		if err != nil {
			t.Errorf("SourceName(%s): %v", tc.ref, err)
			continue
		}
		if got != tc.want {
			t.Errorf("SourceName(%s) = %q, want %q", tc.ref, got, tc.want)
		}
	}
	ref, err := ParseReference("oci-archive:" + dir + "/missing.tar")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SourceName(ref); err == nil {
		t.Errorf("SourceName of a missing archive: no error")
	}
}
