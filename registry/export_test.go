package registry

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestWriteFormatsReadBack(t *testing.T) {
	f := registries(t)
	isolateCredentials(t)
	ctx := context.Background()
	dir := t.TempDir()
	insecure := WithInsecureRegistries(f.plain.host)

	for _, src := range []string{"gzip", "zstd", "raw", "user"} {
		img, err := Pull(ctx, mustRef(t, "docker://"+f.plain.host+"/test/"+src+":1"), insecure)
		if err != nil {
			t.Fatal(err)
		}
		want := diffIDs(t, img)
		for _, tc := range []struct {
			label      string
			dest       string // Write's destination
			skopeoRef  string // the same, as skopeo names it
			comp       Compression
			layerTypes []types.MediaType // every layer's media type, as skopeo sees it; nil: not checked
		}{
			{label: "oci", dest: "oci:" + dir + "/layout-" + src + ":v1", skopeoRef: "oci:" + dir + "/layout-" + src + ":v1"},
			{label: "oci zstd", dest: "oci:" + dir + "/layout-" + src + ":zstd", skopeoRef: "oci:" + dir + "/layout-" + src + ":zstd", comp: Zstd, layerTypes: []types.MediaType{types.OCILayerZStd}},
			{label: "oci-archive gzip", dest: "oci-archive:" + dir + "/" + src + ".oci.tar:v1", skopeoRef: "oci-archive:" + dir + "/" + src + ".oci.tar:v1", comp: Gzip, layerTypes: []types.MediaType{types.OCILayer}},
			{label: "docker-archive", dest: "docker-archive:" + dir + "/" + src + ".docker.tar:snaptest/" + src + ":v1", skopeoRef: "docker-archive:" + dir + "/" + src + ".docker.tar"},
			{label: "docker-archive untagged", dest: "docker-archive:" + dir + "/" + src + ".untagged.tar", skopeoRef: "docker-archive:" + dir + "/" + src + ".untagged.tar"},
		} {
			t.Run(src+" to "+tc.label, func(t *testing.T) {
				var opts []Option
				if tc.comp != "" {
					opts = append(opts, WithCompression(tc.comp))
				}
				dest := mustRef(t, tc.dest)
				if err := Write(ctx, img, dest, opts...); err != nil {
					t.Fatalf("Write(%s) = %v", dest, err)
				}
				m, got := f.skopeoInspect(t, tc.skopeoRef)
				if !slices.Equal(got, want) {
					t.Errorf("skopeo inspect %s: diff IDs %v, want %v", tc.skopeoRef, got, want)
				}
				if dest.Transport != DockerArchive {
					if mt := m["mediaType"]; mt != string(types.OCIManifestSchema1) {
						t.Errorf("skopeo inspect %s: manifest media type %v, want OCI", tc.skopeoRef, mt)
					}
				}
				for _, mt := range layerTypes(m) {
					if tc.layerTypes != nil && !slices.Contains(tc.layerTypes, types.MediaType(mt)) {
						t.Errorf("skopeo inspect %s: layer media type %s, want %v", tc.skopeoRef, mt, tc.layerTypes)
					}
				}
				if dest.Transport == DockerArchive {
					checkDockerArchive(t, dest.Path, dest.Name != nil)
				}
				// skopeo copies it (reading and checking every blob).
				out := filepath.Join(t.TempDir(), "copy")
				if _, err := f.skopeo("copy", tc.skopeoRef, "oci:"+out+":x"); err != nil {
					t.Fatal(err)
				}
				if got := ociDiffIDs(t, out); !slices.Equal(got, want) {
					t.Errorf("skopeo copy %s: diff IDs %v, want %v", tc.skopeoRef, got, want)
				}
				// And this package reads it back, the same config.
				back, err := Pull(ctx, dest)
				if err != nil {
					t.Fatalf("Pull(%s) = %v", dest, err)
				}
				if a, b := mustConfigName(t, back), mustConfigName(t, img); a != b {
					t.Errorf("Pull(%s): config %s, want %s", dest, a, b)
				}
				if err := readAllLayers(back); err != nil {
					t.Errorf("Pull(%s): %v", dest, err)
				}
			})
		}
	}

	// The layout keeps every tag written to it; rewriting a tag replaces it.
	var idx struct {
		Manifests []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	layout := filepath.Join(dir, "layout-gzip")
	img, err := Pull(ctx, mustRef(t, "docker://"+f.plain.host+"/test/zstd:1"), insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(ctx, img, mustRef(t, "oci:"+layout+":v1")); err != nil {
		t.Fatal(err)
	}
	readJSON(t, filepath.Join(layout, "index.json"), &idx)
	var tags []string
	for _, m := range idx.Manifests {
		tags = append(tags, m.Annotations["org.opencontainers.image.ref.name"])
	}
	slices.Sort(tags)
	if !slices.Equal(tags, []string{"v1", "zstd"}) {
		t.Errorf("layout tags after rewriting v1 = %v, want [v1 zstd]", tags)
	}
	back, err := Pull(ctx, mustRef(t, "oci:"+layout+":v1"))
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(t, back) != digestOf(t, img) {
		t.Errorf("oci:%s:v1 = %s after rewriting, want %s", layout, digestOf(t, back), digestOf(t, img))
	}
}

// checkDockerArchive checks that every layer in a docker-archive is gzip and
// that RepoTags is set when tagged.
func checkDockerArchive(t *testing.T, path string, tagged bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
	}
	var m []struct {
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil || len(m) != 1 {
		t.Fatalf("%s: manifest.json: %v %s", path, err, files["manifest.json"])
	}
	if tagged != (len(m[0].RepoTags) == 1) {
		t.Errorf("%s: RepoTags = %v", path, m[0].RepoTags)
	}
	for _, l := range m[0].Layers {
		if b := files[l]; len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("%s: layer %s is not gzip", path, l)
		}
	}
}

func mustConfigName(t *testing.T, img v1.Image) string {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func TestDockerArchivePodmanLoad(t *testing.T) {
	f := registries(t)
	need(t, "podman")
	needRoot(t, "podman load into a private store (rootless podman needs a subordinate ID range)")
	isolateCredentials(t)
	ctx := context.Background()
	img, err := Pull(ctx, mustRef(t, "docker://"+f.plain.host+"/test/zstd:1"), WithInsecureRegistries(f.plain.host))
	if err != nil {
		t.Fatal(err)
	}
	// podman wants a short runroot path.
	dir, err := os.MkdirTemp("/tmp", "pm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	archive := filepath.Join(dir, "img.tar")
	if err := Write(ctx, img, mustRef(t, "docker-archive:"+archive+":snaptest/loaded:v1")); err != nil {
		t.Fatal(err)
	}
	// podman with its own store, so the machine's is untouched.
	podman := func(args ...string) ([]byte, error) {
		cmd := exec.Command("podman", append([]string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "runroot"), "--storage-driver", "vfs"}, args...)...)
		cmd.Env = append(os.Environ(), "CONTAINERS_REGISTRIES_CONF="+filepath.Join(f.dir, "registries.conf"))
		return cmd.CombinedOutput()
	}
	if out, err := podman("load", "-i", archive); err != nil {
		t.Fatalf("podman load -i %s: %v\n%s", archive, err, out)
	}
	out, err := podman("image", "inspect", "snaptest/loaded:v1")
	if err != nil {
		t.Fatalf("podman image inspect: %v\n%s", err, out)
	}
	var insp []struct {
		RootFS struct {
			Layers []string `json:"Layers"`
		} `json:"RootFS"`
	}
	if err := json.Unmarshal(out, &insp); err != nil || len(insp) != 1 {
		t.Fatalf("podman image inspect: %v\n%s", err, out)
	}
	if got, want := insp[0].RootFS.Layers, diffIDs(t, img); !slices.Equal(got, want) {
		t.Errorf("podman loaded diff IDs %v, want %v", got, want)
	}
}
