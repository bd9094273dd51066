package registry

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Layouts and archives written by skopeo, read by Pull: tags, platforms,
// indexes, and the errors for what is not there.
func TestPullLayoutsAndArchives(t *testing.T) {
	f := registries(t)
	ctx := context.Background()
	seed := filepath.Join(f.dir, "seed-layout") // written by go-containerregistry; holds multi, gzip, zstd, raw
	archive := filepath.Join(t.TempDir(), "multi.tar")
	if _, err := f.skopeo("copy", "--all", "oci:"+seed+":multi", "oci-archive:"+archive+":multi"); err != nil {
		t.Fatal(err)
	}
	dockerArchive := filepath.Join(t.TempDir(), "gzip-docker.tar")
	if _, err := f.skopeo("copy", "oci:"+seed+":gzip", "docker-archive:"+dockerArchive+":snaptest/gzip:v2"); err != nil {
		t.Fatal(err)
	}
	amd64, arm64 := digestOf(t, f.amd64), digestOf(t, f.arm64)
	for _, tc := range []struct {
		ref      string
		platform string
		want     v1.Hash
	}{
		{"oci:" + seed + ":multi", "", amd64},
		{"oci:" + seed + ":multi", "arm64", arm64},
		{"oci-archive:" + archive + ":multi", "", amd64},
		{"oci-archive:" + archive, "arm64", arm64}, // the only entry: no tag needed
		{"oci:" + seed + ":zstd", "", digestOf(t, f.images["zstd"])},
	} {
		opts := []Option{}
		if tc.platform != "" {
			opts = append(opts, WithPlatform(v1.Platform{OS: "linux", Architecture: tc.platform}))
		}
		img, err := Pull(ctx, mustRef(t, tc.ref), opts...)
		if err != nil {
			t.Errorf("Pull(%s, %s) = %v", tc.ref, tc.platform, err)
			continue
		}
		if got := digestOf(t, img); got != tc.want {
			t.Errorf("Pull(%s, %s) = %s, want %s", tc.ref, tc.platform, got, tc.want)
		}
		if err := readAllLayers(img); err != nil {
			t.Errorf("Pull(%s, %s): reading layers: %v", tc.ref, tc.platform, err)
		}
	}

	// docker-archive written by skopeo (uncompressed layers): the diff IDs
	// are checked as the layers are read.
	img, err := Pull(ctx, mustRef(t, "docker-archive:"+dockerArchive+":snaptest/gzip:v2"))
	if err != nil {
		t.Fatal(err)
	}
	if files := layerFiles(t, img); files["hello.txt"] != "hello gzip\n" {
		t.Errorf("docker-archive: hello.txt = %q", files["hello.txt"])
	}
	if got, want := mustConfigName(t, img), mustConfigName(t, f.images["gzip"]); got != want {
		t.Errorf("docker-archive: config %s, want %s", got, want)
	}

	for _, tc := range []struct {
		ref    string
		is     error
		saying string
	}{
		{"oci:" + seed + ":nope", ErrNotFound, "tags: "},
		{"oci:" + seed, nil, "name one by tag"},
		{"oci:" + filepath.Join(t.TempDir(), "none"), nil, "no such file"},
		{"oci-archive:" + filepath.Join(t.TempDir(), "none.tar"), nil, "no such file"},
		{"oci-archive:" + archive + ":nope", ErrNotFound, "multi"},
		{"docker-archive:" + dockerArchive + ":snaptest/other:v9", ErrNotFound, "snaptest/other:v9"},
	} {
		_, err := Pull(ctx, mustRef(t, tc.ref))
		if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.saying) || !strings.Contains(err.Error(), mustRef(t, tc.ref).String()) {
			t.Errorf("Pull(%s) = %v, want an error naming it and saying %q", tc.ref, err, tc.saying)
		}
	}
}
