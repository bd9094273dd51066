package oci

import (
	"compress/gzip"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// OpenLayer opens the stored layer blob desc and returns its uncompressed tar
// stream, decompressed as desc.MediaType says: gzip
// (application/vnd.oci.image.layer.v1.tar+gzip and Docker's
// application/vnd.docker.image.rootfs.diff.tar.gzip), zstd
// (application/vnd.oci.image.layer.v1.tar+zstd) or none
// (application/vnd.oci.image.layer.v1.tar). Other media types are an error
// naming the type. The caller closes the stream, which closes the blob.
func (s *Store) OpenLayer(desc ocispec.Descriptor) (io.ReadCloser, error) {
	f, err := s.Open(desc.Digest)
	if err != nil {
		return nil, err
	}
	switch desc.MediaType {
	case ocispec.MediaTypeImageLayer, "application/vnd.docker.image.rootfs.diff.tar":
		return f, nil
	case ocispec.MediaTypeImageLayerGzip, "application/vnd.docker.image.rootfs.diff.tar.gzip":
		zr, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("oci layer %s: gzip: %w", desc.Digest, err)
		}
		return &layerReader{Reader: zr, close: func() error { zr.Close(); return f.Close() }}, nil
	case ocispec.MediaTypeImageLayerZstd:
		zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("oci layer %s: zstd: %w", desc.Digest, err)
		}
		return &layerReader{Reader: zr, close: func() error { zr.Close(); return f.Close() }}, nil
	}
	f.Close()
	return nil, fmt.Errorf("oci layer %s: media type %q is not a layer this store can unpack (tar, tar+gzip or tar+zstd)", desc.Digest, desc.MediaType)
}

type layerReader struct {
	io.Reader
	close func() error
}

func (r *layerReader) Close() error { return r.close() }

// LayerMediaType names a layer media type as an OCI manifest does: the OCI
// tar, tar+gzip and tar+zstd types as they are, Docker's
// application/vnd.docker.image.rootfs.diff.tar and .tar.gzip as the OCI
// types of the same bytes. Foreign (non-distributable) layers, Docker's and
// OCI's, and any other type are an error naming it.
func LayerMediaType(mt string) (string, error) {
	switch mt {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd:
		return mt, nil
	case "application/vnd.docker.image.rootfs.diff.tar":
		return ocispec.MediaTypeImageLayer, nil
	case "application/vnd.docker.image.rootfs.diff.tar.gzip":
		return ocispec.MediaTypeImageLayerGzip, nil
	case "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
		ocispec.MediaTypeImageLayerNonDistributable,     //nolint:staticcheck // refused by name
		ocispec.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck
		ocispec.MediaTypeImageLayerNonDistributableZstd: //nolint:staticcheck
		return "", fmt.Errorf("layer media type %s (a foreign, non-distributable layer) is not supported", mt)
	}
	return "", fmt.Errorf("layer media type %q is not a container image layer this builder can unpack (tar, tar+gzip or tar+zstd)", mt)
}
