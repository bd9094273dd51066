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
