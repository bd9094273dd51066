package oci

import (
	"bytes"
	"compress/gzip"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestOpenLayer(t *testing.T) {
	s := newTestStore(t)
	plain := []byte(strings.Repeat("layer tar bytes ", 1000))
	var gz, zs bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(plain)
	gw.Close()
	zw, err := zstd.NewWriter(&zs)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(plain)
	zw.Close()
	for _, c := range []struct {
		mediaType string
		blob      []byte
	}{
		{ocispec.MediaTypeImageLayer, plain},
		{"application/vnd.docker.image.rootfs.diff.tar", plain},
		{ocispec.MediaTypeImageLayerGzip, gz.Bytes()},
		{"application/vnd.docker.image.rootfs.diff.tar.gzip", gz.Bytes()},
		{ocispec.MediaTypeImageLayerZstd, zs.Bytes()},
	} {
		desc, err := s.WriteBlob(c.mediaType, c.blob)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := s.OpenLayer(desc)
		if err != nil {
			t.Fatalf("OpenLayer(%s): %v", c.mediaType, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("OpenLayer(%s) read %d bytes, %v; want the %d uncompressed bytes", c.mediaType, len(got), err, len(plain))
		}
	}

	desc, err := s.WriteBlob("application/vnd.oci.image.layer.v1.tar+bzip2", plain)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenLayer(desc); err == nil || !strings.Contains(err.Error(), "tar+bzip2") {
		t.Errorf("OpenLayer(tar+bzip2) = %v, want an error naming the media type", err)
	}
	desc, err = s.WriteBlob(ocispec.MediaTypeImageLayerGzip, plain)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenLayer(desc); err == nil || !strings.Contains(err.Error(), "gzip") {
		t.Errorf("OpenLayer(gzip media type, plain bytes) = %v, want a gzip error", err)
	}
}

// TestLayerMediaType: Docker's layer types are named as OCI's, OCI's stay,
// foreign layers and other types are refused by name.
func TestLayerMediaType(t *testing.T) {
	for mt, want := range map[string]string{
		ocispec.MediaTypeImageLayer:                                    ocispec.MediaTypeImageLayer,
		ocispec.MediaTypeImageLayerGzip:                                ocispec.MediaTypeImageLayerGzip,
		ocispec.MediaTypeImageLayerZstd:                                ocispec.MediaTypeImageLayerZstd,
		"application/vnd.docker.image.rootfs.diff.tar":                 ocispec.MediaTypeImageLayer,
		"application/vnd.docker.image.rootfs.diff.tar.gzip":            ocispec.MediaTypeImageLayerGzip,
		"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":    "foreign",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "foreign",
		"application/vnd.oci.image.config.v1+json":                     "not a container image layer",
	} {
		got, err := LayerMediaType(mt)
		switch {
		case strings.Contains(want, "/"):
			if err != nil || got != want {
				t.Errorf("%s: %q, %v; want %q", mt, got, err, want)
			}
		case err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), mt):
			t.Errorf("%s: %q, %v; want an error naming it (%s)", mt, got, err, want)
		}
	}
}
