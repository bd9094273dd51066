package snapbuild

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// pTar makes a layer tar: name -> content; "dir/" a directory, a value
// "-> target" a symlink.
func pTar(t *testing.T, entries [][2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e[0], Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(e[1]))}
		switch {
		case strings.HasSuffix(e[0], "/"):
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		case strings.HasPrefix(e[1], "-> "):
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, strings.TrimPrefix(e[1], "-> "), 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(e[1]))
		}
	}
	tw.Close()
	return buf.Bytes()
}

// pImage makes a linux/amd64 image of the given layers (gzip, zstd and
// uncompressed alternately, as registries serve them) with a config.
func pImage(t *testing.T, arch string, layers ...[]byte) v1.Image {
	t.Helper()
	img := empty.Image
	for i, data := range layers {
		data := data
		var l v1.Layer
		var err error
		switch i % 3 {
		case 0:
			l, err = tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
		case 1:
			l, err = tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
				tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
		default:
			l = static.NewLayer(data, types.OCIUncompressedLayer)
		}
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Env = []string{"PATH=/opt/tool/bin:/usr/bin:/bin", "TOOL_HOME=/opt/tool"}
	cf.Config.WorkingDir = "/srv/app"
	cf.Config.User = "1000:1000"
	cf.Config.Entrypoint = []string{"/opt/tool/bin/entry"}
	cf.Config.Cmd = []string{"--serve"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return mutate.MediaType(img, types.OCIManifestSchema1)
}

func TestFromRegistryImport(t *testing.T) {
	uNeedRoot(t)
	base := pImage(t, "amd64",
		pTar(t, [][2]string{{"etc/", ""}, {"etc/os-release", "ID=tool\n"}, {"opt/tool/old", "old"}, {"bin/", ""}}),
		pTar(t, [][2]string{{"opt/tool/", ""}, {"opt/tool/.wh.old", ""}, {"opt/tool/bin/", ""}, {"opt/tool/bin/entry", "#!/bin/sh\n"}}),
		pTar(t, [][2]string{{"srv/app/", ""}, {"srv/app/link", "-> /opt/tool/bin/entry"}}),
	)
	pulls := 0
	b := uBuilder(t, WithPuller(func(ctx context.Context, ref string, creds *Credentials) (v1.Image, error) {
		pulls++
		if ref != "registry.example:5000/team/tool:1" {
			t.Errorf("pulled %q", ref)
		}
		return base, nil
	}))
	img := FromRegistry("registry.example:5000/team/tool:1", RegistryOptions{}).Env(map[string]string{"EXTRA": "1"})
	res, err := b.Build(t.Context(), img)
	if err != nil {
		t.Fatal(err)
	}
	c := res.Config.Config
	if c.WorkingDir != "/srv/app" || c.User != "1000:1000" || !slices.Equal(c.Entrypoint, []string{"/opt/tool/bin/entry"}) ||
		!slices.Equal(c.Cmd, []string{"--serve"}) || !slices.Contains(c.Env, "TOOL_HOME=/opt/tool") || !slices.Contains(c.Env, "EXTRA=1") {
		t.Errorf("the base's config did not carry over: %+v", c)
	}
	// The layers are the registry's blobs, with their digests and diffIDs.
	m, err := b.e.Store().Blobs().Manifest(res.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := base.Layers()
	if len(m.Layers) != len(want) {
		t.Fatalf("%d layers, want %d", len(m.Layers), len(want))
	}
	for i, l := range want {
		d, _ := l.Digest()
		if m.Layers[i].Digest.String() != d.String() {
			t.Errorf("layer %d: %s, want the registry's %s", i, m.Layers[i].Digest, d)
		}
	}
	if m.Layers[1].MediaType != "application/vnd.oci.image.layer.v1.tar+zstd" || m.Layers[2].MediaType != "application/vnd.oci.image.layer.v1.tar" {
		t.Errorf("media types: %s %s %s", m.Layers[0].MediaType, m.Layers[1].MediaType, m.Layers[2].MediaType)
	}
	// The snapshots show the image's filesystem: the whiteout hides "old".
	rec, err := b.e.Store().Resolve(res.ID)
	if err != nil {
		t.Fatal(err)
	}
	v, err := b.e.Store().Snapshots().View(rec.ChainID)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Remove()
	if _, err := os.Stat(filepath.Join(v.Rootfs, "opt/tool/old")); err == nil {
		t.Error("opt/tool/old is visible: the whiteout was not applied")
	}
	if b, err := os.ReadFile(filepath.Join(v.Rootfs, "opt/tool/bin/entry")); err != nil || string(b) != "#!/bin/sh\n" {
		t.Errorf("opt/tool/bin/entry: %q, %v", b, err)
	}
	if l, _ := os.Readlink(filepath.Join(v.Rootfs, "srv/app/link")); l != "/opt/tool/bin/entry" {
		t.Errorf("srv/app/link -> %q", l)
	}
	v.Remove()

	// Built again: no pull (the reference is cached); force_build pulls.
	if _, err := b.Build(t.Context(), img); err != nil || pulls != 1 {
		t.Errorf("rebuild: %v, %d pulls", err, pulls)
	}
	if _, err := b.Build(t.Context(), FromRegistry("registry.example:5000/team/tool:1", RegistryOptions{}, ForceBuild())); err != nil || pulls != 2 {
		t.Errorf("force_build: %v, %d pulls", err, pulls)
	}
}

func TestFromRegistryBadImages(t *testing.T) {
	uNeedRoot(t)
	for _, tc := range []struct {
		name string
		img  v1.Image
		want string
	}{
		{"arm64", pImage(t, "arm64", pTar(t, [][2]string{{"a", "a"}})), "the image is for linux/arm64: snapbuild builds linux/amd64 images"},
		{"escape", pImage(t, "amd64", pTar(t, [][2]string{{"../../evil", "x"}})), "outside"},
		{"tampered", tamperedImage(t), "digest mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := uBuilder(t, WithPuller(func(context.Context, string, *Credentials) (v1.Image, error) { return tc.img, nil }))
			_, err := b.Build(t.Context(), FromRegistry("r.example/x:1", RegistryOptions{}))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "from_registry: FROM r.example/x:1: ") {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
			for _, d := range []string{"tmp", "snapshots/.tmp"} {
				if ents, _ := os.ReadDir(filepath.Join(b.e.Store().Root(), d)); len(ents) > 0 {
					t.Errorf("%s left: %d entries", d, len(ents))
				}
			}
			if ents, _ := os.ReadDir(filepath.Join(b.e.Store().Root(), "snapshots")); len(ents) > 1 {
				t.Errorf("snapshots were committed for a failed pull: %d entries", len(ents))
			}
		})
	}
}

// tamperedLayer serves other bytes than its digest says.
type tamperedLayer struct{ v1.Layer }

func (l tamperedLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	b[len(b)/2] ^= 0xff
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (i tamperedImageT) Layers() ([]v1.Layer, error) {
	ls, err := i.Image.Layers()
	for j := range ls {
		ls[j] = tamperedLayer{ls[j]}
	}
	return ls, err
}

type tamperedImageT struct{ v1.Image }

func tamperedImage(t *testing.T) v1.Image {
	return tamperedImageT{pImage(t, "amd64", pTar(t, [][2]string{{"a", "a"}}))}
}

// TestWithPull: a build takes a tag the store has without asking the
// registry; WithPull pulls it again, once per Builder, for from_registry
// and for a Dockerfile's FROM, as docker build --pull does.
func TestWithPull(t *testing.T) {
	uNeedRoot(t)
	const ref = "registry.example:5000/team/tool:1"
	base := pImage(t, "amd64", pTar(t, [][2]string{{"etc/", ""}, {"etc/os-release", "ID=tool\n"}}))
	pulls := 0
	puller := WithPuller(func(ctx context.Context, r string, creds *Credentials) (v1.Image, error) {
		pulls++
		return base, nil
	})
	dir := t.TempDir()
	df := filepath.Join(dir, "Dockerfile")
	if err := os.WriteFile(df, []byte("FROM "+ref+"\nENV X=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := uBuilder(t, puller)
	root := b.Root()
	reg := FromRegistry(ref, RegistryOptions{})
	fromDF := FromDockerfile(df, FromDockerfileOptions{})
	for _, img := range []Image{reg, fromDF, reg} {
		if _, err := b.Build(t.Context(), img); err != nil {
			t.Fatal(err)
		}
	}
	if pulls != 2 {
		t.Fatalf("without WithPull: %d pulls, want 2 (the from_registry reference, then the Dockerfile's FROM, which are recorded apart)", pulls)
	}
	b.Close()

	pulls = 0
	bp := uBuilder(t, puller, WithRoot(root), WithPull(true))
	for _, img := range []Image{reg, reg, fromDF, fromDF} {
		if _, err := bp.Build(t.Context(), img); err != nil {
			t.Fatal(err)
		}
	}
	if pulls != 2 {
		t.Errorf("WithPull: %d pulls, want 2 (each reference once per Builder)", pulls)
	}
}
