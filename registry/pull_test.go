package registry

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestPullPlatforms(t *testing.T) {
	f := registries(t)
	ctx := context.Background()
	ref := mustRef(t, "docker://"+f.plain.host+"/test/multi:1")
	insecure := WithInsecureRegistries(f.plain.host)

	img, err := Pull(ctx, ref, insecure)
	if err != nil {
		t.Fatalf("Pull(%s) = %v", ref, err)
	}
	want, _ := f.amd64.Digest()
	if got, _ := img.Digest(); got != want {
		t.Errorf("Pull(%s) picked %s, want the linux/amd64 image %s", ref, got, want)
	}
	if files := layerFiles(t, img); files["arch"] != "amd64" {
		t.Errorf("Pull(%s): /arch = %q, want amd64", ref, files["arch"])
	}

	img, err = Pull(ctx, ref, insecure, WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}))
	if err != nil {
		t.Fatalf("Pull(%s, arm64) = %v", ref, err)
	}
	if files := layerFiles(t, img); files["arch"] != "arm64" {
		t.Errorf("Pull(%s, arm64): /arch = %q, want arm64", ref, files["arch"])
	}

	_, err = Pull(ctx, ref, insecure, WithPlatform(v1.Platform{OS: "linux", Architecture: "s390x"}))
	if !errors.Is(err, ErrPlatform) || !strings.Contains(err.Error(), "linux/amd64, linux/arm64/v8") || !strings.Contains(err.Error(), "linux/s390x") {
		t.Errorf("Pull(%s, s390x) = %v, want ErrPlatform listing linux/amd64, linux/arm64/v8", ref, err)
	}

	// A single-platform image for another platform is refused too.
	_, err = Pull(ctx, mustRef(t, "docker://"+f.plain.host+"/test/gzip:1"), insecure, WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}))
	if !errors.Is(err, ErrPlatform) || !strings.Contains(err.Error(), "linux/amd64") {
		t.Errorf("Pull(gzip, arm64) = %v, want ErrPlatform naming linux/amd64", err)
	}
}

func TestPullCompressionsAndMediaTypes(t *testing.T) {
	f := registries(t)
	for _, tc := range []struct {
		name      string
		manifest  types.MediaType
		layer     types.MediaType
		wantFiles map[string]string
	}{
		{"gzip", types.OCIManifestSchema1, types.OCILayer, map[string]string{"hello.txt": "hello gzip\n", "dir/b": "b gzip"}},
		{"zstd", types.OCIManifestSchema1, types.OCILayerZStd, map[string]string{"hello.txt": "hello zstd\n", "dir/z": strings.Repeat("zstd ", 1000)}},
		{"raw", types.OCIManifestSchema1, types.OCIUncompressedLayer, map[string]string{"hello.txt": "hello uncompressed\n"}},
		{"user", types.DockerManifestSchema2, types.DockerLayer, map[string]string{"bin/app": "#!/bin/sh\necho app\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := mustRef(t, f.plain.host+"/test/"+tc.name+":1") // bare REF, as skopeo takes it
			img, err := Pull(context.Background(), ref, WithInsecureRegistries(f.plain.host))
			if err != nil {
				t.Fatalf("Pull(%s) = %v", ref, err)
			}
			seed := f.images[tc.name]
			if got, want := digestOf(t, img), digestOf(t, seed); got != want {
				t.Errorf("manifest digest = %s, want the seeded %s", got, want)
			}
			if mt, _ := img.MediaType(); mt != tc.manifest {
				t.Errorf("manifest media type = %s, want %s", mt, tc.manifest)
			}
			if got, want := diffIDs(t, img), diffIDs(t, seed); !slices.Equal(got, want) {
				t.Errorf("diff IDs = %v, want %v", got, want)
			}
			layers, _ := img.Layers()
			seedLayers, _ := seed.Layers()
			for i, l := range layers {
				mt, _ := l.MediaType()
				d, _ := l.Digest()
				sd, _ := seedLayers[i].Digest()
				if mt != tc.layer || d != sd {
					t.Errorf("layer %d = %s %s, want %s %s", i, mt, d, tc.layer, sd)
				}
				// Compressed gives the stored bytes.
				rc, err := l.Compressed()
				if err != nil {
					t.Fatal(err)
				}
				h, _, err := v1.SHA256(rc)
				rc.Close()
				if err != nil || h != sd {
					t.Errorf("layer %d: Compressed() hashes to %s (%v), want %s", i, h, err, sd)
				}
			}
			files := layerFiles(t, img)
			for name, want := range tc.wantFiles {
				if files[name] != want {
					t.Errorf("file %s = %q, want %q", name, files[name], want)
				}
			}
		})
	}
}

func TestPullConfigCarried(t *testing.T) {
	f := registries(t)
	img, err := Pull(context.Background(), mustRef(t, "docker://"+f.plain.host+"/test/user:1"), WithInsecureRegistries(f.plain.host))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "1000:1000" || !slices.Equal(cf.Config.Entrypoint, []string{"/bin/app", "--serve"}) ||
		!slices.Equal(cf.Config.Cmd, []string{"--port", "8080"}) || cf.Config.WorkingDir != "/srv/app" ||
		!slices.Contains(cf.Config.Env, "APP_MODE=test") {
		t.Errorf("config = %+v, want USER 1000:1000, ENTRYPOINT /bin/app --serve, CMD --port 8080, WORKDIR /srv/app, APP_MODE=test", cf.Config)
	}
}

func TestPullUnknownTag(t *testing.T) {
	f := registries(t)
	ref := mustRef(t, "docker://"+f.plain.host+"/test/gzip:no-such-tag")
	_, err := Pull(context.Background(), ref, WithInsecureRegistries(f.plain.host))
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no-such-tag") || !strings.Contains(err.Error(), f.plain.host+"/test/gzip") {
		t.Errorf("Pull(%s) = %v, want ErrNotFound naming the tag and repository", ref, err)
	}
	ref = mustRef(t, "docker://"+f.plain.host+"/test/no-such-repo:1")
	if _, err := Pull(context.Background(), ref, WithInsecureRegistries(f.plain.host)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Pull(%s) = %v, want ErrNotFound", ref, err)
	}
}

func digestOf(t testing.TB, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var _ = io.EOF
