package oci

import (
	"context"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layer is a committed layer blob.
type Layer struct {
	// Descriptor of the compressed blob: media type, digest, size in bytes.
	Descriptor ocispec.Descriptor
	// DiffID is the sha256 digest of the uncompressed tar stream.
	DiffID digest.Digest
	// UncompressedSize is the tar stream's length in bytes.
	UncompressedSize int64
}

// zstdOptions pins the encoder so that the same tar gives the same blob bytes
// with this library version: klauspost's fastest level (zstd level 1), a
// 4 MiB window, checksums on, and one stream encoded as a pipeline (the
// caller fills a block while one goroutine finds the matches of the last
// and another entropy-codes and writes the one before). The output depends
// on the level and the window, not on the number of goroutines.
//
// Measured on a 319 MB change (13,866 entries: Python's standard library,
// C headers, eight large shared libraries) on 2 cores, diff to fsynced
// blob, against tar -c | zstd -3 -T0 on the same files, the three taking
// turns in one run on a busy host (load 7-10): the earlier settings (level
// 3, two goroutines compressing 2 MiB jobs of a 512 KiB window) reached
// 0.49x the peer's throughput and took about 1.6x the CPU of C zstd -3;
// these reach 1.06x and take about 1.1x its CPU, for a 3% smaller blob
// (84.6 MB against 87.3 MB: the larger window finds more matches) and less
// than half the memory (no jobs in flight: 19 MiB peak RSS against 44 MiB
// for the capture alone, GOGC=25). An 8 MiB window gives little more
// (84.1 MB) and costs twice the history buffers. The size depends on the
// content: on a change that is mostly shared libraries (196 MB of /usr),
// level 1 made a 5% bigger blob than the earlier settings (63.2 MB against
// 60.1 MB), where level 3 with this window made a 3% smaller one (58.5 MB)
// but ran at 0.84x the peer's throughput against 1.03x.
//
// The blob digest can still change when klauspost/compress changes its
// encoder or these settings change, which is why caches are keyed by
// DiffID.
var zstdOptions = []zstd.EOption{
	zstd.WithEncoderLevel(zstd.SpeedFastest),
	zstd.WithEncoderConcurrency(2),
	zstd.WithWindowSize(4 << 20),
	zstd.WithEncoderCRC(true),
}

// WriteLayer streams the uncompressed tar that write produces through a
// sha256 (the diffID), a zstd encoder and a second sha256 (the blob digest) into
// the store, in one pass. If write fails or ctx is cancelled nothing is stored.
func (s *Store) WriteLayer(ctx context.Context, write func(w io.Writer) error) (Layer, error) {
	bw, err := s.newWriter()
	if err != nil {
		return Layer{}, err
	}
	defer bw.abort()
	enc, err := zstd.NewWriter(bw, zstdOptions...)
	if err != nil {
		return Layer{}, fmt.Errorf("oci layer: %w", err)
	}
	diffID := digest.SHA256.Digester()
	cw := &countWriter{w: io.MultiWriter(diffID.Hash(), enc)}
	if err := write(cw); err != nil {
		enc.Close()
		return Layer{}, err
	}
	if err := ctx.Err(); err != nil {
		enc.Close()
		return Layer{}, err
	}
	if err := enc.Close(); err != nil {
		return Layer{}, fmt.Errorf("oci layer: zstd: %w", err)
	}
	size := bw.n
	d, err := bw.commit()
	if err != nil {
		return Layer{}, err
	}
	return Layer{
		Descriptor:       ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerZstd, Digest: d, Size: size},
		DiffID:           diffID.Digest(),
		UncompressedSize: cw.n,
	}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
