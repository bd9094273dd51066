package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// uniqueImage is a one-layer image whose blobs no other test shares.
func uniqueImage(t *testing.T, comp string) (v1.Image, *testLayer) {
	t.Helper()
	b := make([]byte, 16)
	rand.Read(b)
	l := newTestLayer(map[string]string{"unique": hex.EncodeToString(b), "padding": strings.Repeat("x", 4096)}, comp, false)
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	base, err := mutate.ConfigFile(base, &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: l, MediaType: l.mt})
	if err != nil {
		t.Fatal(err)
	}
	return img, l
}

// flipByte changes one byte in the middle of a file, keeping its size.
func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantDigestError(t *testing.T, what string, err error, blob v1.Hash) {
	t.Helper()
	t.Logf("%s: %v", what, err)
	var de *DigestError
	if !errors.Is(err, ErrDigestMismatch) || !errors.As(err, &de) || !strings.Contains(err.Error(), "digest mismatch") || !strings.Contains(err.Error(), blob.String()) {
		t.Errorf("%s = %v, want a digest mismatch naming %s", what, err, blob)
	}
}

func TestTamperedRegistryBlob(t *testing.T) {
	f := registries(t)
	isolateCredentials(t)
	ctx := context.Background()
	for _, comp := range []string{"gzip", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			img, l := uniqueImage(t, comp)
			ref, _ := name.ParseReference(f.plain.host + "/tamper/" + comp + ":1")
			if err := remote.Write(ref, img); err != nil {
				t.Fatal(err)
			}
			d, _ := l.Digest()
			flipByte(t, f.plain.blobPath(d))

			src := mustRef(t, "docker://"+ref.String())
			opt := WithInsecureRegistries(f.plain.host)
			pulled, err := Pull(ctx, src, opt)
			if err != nil {
				t.Fatalf("Pull(%s) = %v (the manifest and config are intact)", src, err)
			}
			layers, _ := pulled.Layers()
			rc, err := layers[0].Compressed()
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
			wantDigestError(t, "reading the tampered blob", err, d)

			rc, err = layers[0].Uncompressed()
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			wantDigestError(t, "decompressing the tampered blob", err, d)

			// Writing it out fails, and leaves no blob under its digest.
			dir := filepath.Join(t.TempDir(), "layout")
			err = Write(ctx, pulled, mustRef(t, "oci:"+dir+":x"))
			wantDigestError(t, "Write(oci:) of the tampered image", err, d)
			if _, serr := os.Stat(filepath.Join(dir, "blobs", "sha256", d.Hex)); serr == nil {
				t.Errorf("Write left the tampered blob in the layout")
			}
		})
	}
	t.Run("config", func(t *testing.T) {
		img, _ := uniqueImage(t, "gzip")
		ref, _ := name.ParseReference(f.plain.host + "/tamper/config:1")
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		cd, _ := img.ConfigName()
		flipByte(t, f.plain.blobPath(cd))
		_, err := Pull(ctx, mustRef(t, ref.String()), WithInsecureRegistries(f.plain.host))
		wantDigestError(t, "Pull with a tampered config", err, cd)
	})
}

func TestTamperedLayoutAndArchive(t *testing.T) {
	ctx := context.Background()
	img, l := uniqueImage(t, "zstd")
	d, _ := l.Digest()
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "t"})); err != nil {
		t.Fatal(err)
	}
	// Intact: reads fine, through both the layout and an archive of it.
	src := mustRef(t, "oci:"+dir+":t")
	good, err := Pull(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if err := readAllLayers(good); err != nil {
		t.Fatalf("intact layout: %v", err)
	}
	archive := filepath.Join(t.TempDir(), "img.tar")
	if err := Write(ctx, good, mustRef(t, "oci-archive:"+archive+":t")); err != nil {
		t.Fatal(err)
	}

	flipByte(t, filepath.Join(dir, "blobs", "sha256", d.Hex))
	bad, err := Pull(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	wantDigestError(t, "reading a tampered oci: blob", readAllLayers(bad), d)

	// Tamper the archive's copy of the blob in place.
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := l.Compressed()
	blob, _ := io.ReadAll(c)
	i := strings.Index(string(b), string(blob))
	if i < 0 {
		t.Fatal("blob not found in the archive")
	}
	b[i+len(blob)/2] ^= 0xff
	if err := os.WriteFile(archive, b, 0o644); err != nil {
		t.Fatal(err)
	}
	bad, err = Pull(ctx, mustRef(t, "oci-archive:"+archive+":t"))
	if err != nil {
		t.Fatal(err)
	}
	wantDigestError(t, "reading a tampered oci-archive: blob", readAllLayers(bad), d)

	// A tampered config fails Pull itself.
	cd, _ := img.ConfigName()
	flipByte(t, filepath.Join(dir, "blobs", "sha256", cd.Hex))
	_, err = Pull(ctx, src)
	wantDigestError(t, "Pull(oci:) with a tampered config", err, cd)
}
