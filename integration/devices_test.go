package integration

import (
	"archive/tar"
	"bytes"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// devicesImage writes an OCI layout at dir holding the image "devs": one
// layer with a file and two device nodes, as images exported by docker
// from a rootful build can hold.
func devicesImage(t *testing.T, dir string) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "dev/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		{Name: "dev/sda", Typeflag: tar.TypeBlock, Mode: 0o660, Devmajor: 8},
		{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
	} {
		must(t, tw.WriteHeader(h))
	}
	must(t, tw.WriteHeader(&tar.Header{Name: "etc/hostname", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4}))
	_, err := tw.Write([]byte("box\n"))
	must(t, err)
	must(t, tw.Close())
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	must(t, err)
	writeLayout(t, dir, "devs", l)
}

// writeLayout writes an OCI layout at dir holding one linux/amd64 image of
// layers, named tag, readable by everyone (a rootless test user loads it).
func writeLayout(t *testing.T, dir, tag string, layers ...v1.Layer) {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	must(t, err)
	cf, err := img.ConfigFile()
	must(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	must(t, err)
	p, err := layout.Write(dir, empty.Index)
	must(t, err)
	must(t, p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag})))
	if out, err := exec.Command("chmod", "-R", "a+rX", dir).CombinedOutput(); err != nil {
		t.Fatalf("chmod: %v\n%s", err, out)
	}
}

// TestBaseDevicesRootless: a base image with device nodes, used rootless,
// builds with a warning that names the nodes it could not create in its
// snapshot; as root they are created and there is no warning.
func TestBaseDevicesRootless(t *testing.T) {
	u := ensureTestUser(t)
	home := userDir(t, u)
	devicesImage(t, filepath.Join(home, "layout"))
	recipe := writeRecipe(t, home, "devs.yaml", "- from_registry: \"oci:"+filepath.Join(home, "layout")+":devs\"\n")
	const warning = "holds 2 device node(s) that a rootless build cannot create: dev/null, dev/sda. Build steps on this base do not see them"

	rootless := runner{t: t, user: u.Username, root: filepath.Join(home, "store")}
	res := rootless.ok("build", recipe, "--progress", "plain")
	for _, l := range strings.Split(res.stdout+res.stderr, "\n") {
		if strings.Contains(l, "WARNING") {
			t.Log(l)
		}
	}
	if out := res.stdout + res.stderr; !strings.Contains(out, "WARNING: layer 1/1 (sha256:") || !strings.Contains(out, warning) {
		t.Errorf("rootless build: no warning %q in:\n%s", warning, tail(out, 20))
	}

	// The export keeps the pulled layer as it is, devices included.
	exported := filepath.Join(home, "exported")
	rootless.ok("export", "devs", "oci:"+exported+":devs")
	idx, err := layout.ImageIndexFromPath(exported)
	must(t, err)
	im, err := idx.IndexManifest()
	must(t, err)
	img, err := idx.Image(im.Manifests[0].Digest)
	must(t, err)
	layers, err := img.Layers()
	must(t, err)
	rc, err := layers[0].Uncompressed()
	must(t, err)
	defer rc.Close()
	devs := map[string]byte{}
	for tr := tar.NewReader(rc); ; {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		devs[h.Name] = h.Typeflag
	}
	if devs["dev/null"] != tar.TypeChar || devs["dev/sda"] != tar.TypeBlock {
		t.Errorf("the exported layer lost the device nodes: %v", devs)
	}

	root := runner{t: t, root: filepath.Join(t.TempDir(), "store")}
	res = root.ok("build", recipe, "--progress", "plain")
	if out := res.stdout + res.stderr; strings.Contains(out, "device node") {
		t.Errorf("root build warned about device nodes:\n%s", tail(out, 20))
	}
}
