package integration

import (
	"archive/tar"
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// tarLayer makes a layer of the tar entries, regular files with body.
func tarLayer(t *testing.T, entries ...tar.Header) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		body := ""
		if h.Typeflag == tar.TypeReg {
			body, h.Size = h.Name+"\n", int64(len(h.Name)+1)
		}
		must(t, tw.WriteHeader(&h))
		_, err := tw.Write([]byte(body))
		must(t, err)
	}
	must(t, tw.Close())
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	must(t, err)
	return l
}

// hardlinkImage writes an OCI layout at dir holding the image "hostile":
// a layer with usr/bin/python3.11, and a second layer whose
// usr/bin/python3 is a hard link to it, which overlayfs cannot apply. It
// returns the digest of the second layer.
func hardlinkImage(t *testing.T, dir string) string {
	base := tarLayer(t,
		tar.Header{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755},
		tar.Header{Name: "usr/bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		tar.Header{Name: "usr/bin/python3.11", Typeflag: tar.TypeReg, Mode: 0o755},
	)
	link := tarLayer(t,
		tar.Header{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755},
		tar.Header{Name: "usr/bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		tar.Header{Name: "usr/bin/pip", Typeflag: tar.TypeReg, Mode: 0o755},
		tar.Header{Name: "usr/bin/python3", Typeflag: tar.TypeLink, Linkname: "usr/bin/python3.11"},
	)
	writeLayout(t, dir, "hostile", base, link)
	d, err := link.Digest()
	must(t, err)
	return d.String()
}

// TestHostileHardlinkLayer: a base image whose layer hard-links a file of
// the layer below fails to build, root and rootless, with an error that
// names the layer, its digest, the entry and why it is refused; nothing is
// left mounted.
func TestHostileHardlinkLayer(t *testing.T) {
	u := ensureTestUser(t)
	home := userDir(t, u)
	digest := hardlinkImage(t, filepath.Join(home, "layout"))
	recipe := writeRecipe(t, home, "hostile.yaml", "- from_registry: \"oci:"+filepath.Join(home, "layout")+":hostile\"\n- run_commands: [\"true\"]\n")
	want := []string{
		"layer 2 (" + digest + "): ",
		`entry "usr/bin/python3": refused: hard link to "usr/bin/python3.11", which no earlier entry of this layer wrote (a hard link may point only to a file of its own layer: overlayfs keeps each layer apart, so a file of a lower layer cannot be linked to)`,
	}
	for _, r := range []runner{
		{t: t, root: filepath.Join(t.TempDir(), "store")},
		{t: t, user: u.Username, root: filepath.Join(home, "store")},
	} {
		res := r.run("", "build", recipe, "--progress", "plain")
		if res.code != 1 {
			t.Errorf("user %q: exit %d, want 1\n%s", r.user, res.code, tail(res.stderr, 20))
		}
		for _, w := range want {
			if !strings.Contains(res.stderr, w) {
				t.Errorf("user %q: stderr lacks %q:\n%s", r.user, w, tail(res.stderr, 20))
			}
		}
		t.Logf("user %q: %s", r.user, tail(res.stderr, 1))
		if m := storeMounts(t, r.root); len(m) > 0 {
			t.Errorf("user %q: mounts left under the store: %v", r.user, m)
		}
	}
}
