package registry

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// image is a v1.Image held as its verified manifest and config bytes plus one
// v1.Layer per manifest layer. Pull returns one whose layers verify what they
// stream; Write builds one when it recompresses layers.
type image struct {
	rawManifest, rawConfig []byte
	mediaType              types.MediaType
	layers                 []v1.Layer
}

var _ v1.Image = (*image)(nil)

func (i *image) Layers() ([]v1.Layer, error)         { return slices.Clone(i.layers), nil }
func (i *image) MediaType() (types.MediaType, error) { return i.mediaType, nil }
func (i *image) Size() (int64, error)                { return int64(len(i.rawManifest)), nil }
func (i *image) ConfigName() (v1.Hash, error)        { return sha256Hash(i.rawConfig), nil }
func (i *image) RawConfigFile() ([]byte, error)      { return slices.Clone(i.rawConfig), nil }
func (i *image) Digest() (v1.Hash, error)            { return sha256Hash(i.rawManifest), nil }
func (i *image) RawManifest() ([]byte, error)        { return slices.Clone(i.rawManifest), nil }
func (i *image) ConfigFile() (*v1.ConfigFile, error) {
	return v1.ParseConfigFile(bytes.NewReader(i.rawConfig))
}
func (i *image) Manifest() (*v1.Manifest, error) {
	return v1.ParseManifest(bytes.NewReader(i.rawManifest))
}
func (i *image) LayerByDigest(h v1.Hash) (v1.Layer, error) { return i.layerBy(h, v1.Layer.Digest) }
func (i *image) LayerByDiffID(h v1.Hash) (v1.Layer, error) { return i.layerBy(h, v1.Layer.DiffID) }

func (i *image) layerBy(h v1.Hash, key func(v1.Layer) (v1.Hash, error)) (v1.Layer, error) {
	for _, l := range i.layers {
		if k, err := key(l); err == nil && k == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("image has no layer %s", h)
}

func sha256Hash(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// verifyImage reads src's manifest and config, checks them against want (the
// manifest digest, when the source names one) and the manifest's config
// digest, and wraps each layer so that reading it verifies its digest, size
// and diff ID. source names where the image comes from in errors.
func verifyImage(src v1.Image, want *v1.Hash, source string) (*image, error) {
	raw, err := src.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	if want != nil {
		if got := sha256Hash(raw); got != *want {
			return nil, &DigestError{Kind: "manifest", Digest: want.String(), Got: got.String(), Size: int64(len(raw)), WantSize: -1, Source: source}
		}
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing manifest: %w", err)
	}
	mt := m.MediaType
	if mt == "" {
		if mt, err = src.MediaType(); err != nil {
			return nil, err
		}
	}
	switch mt {
	case types.OCIManifestSchema1, types.DockerManifestSchema2:
	case types.DockerManifestSchema1, types.DockerManifestSchema1Signed:
		return nil, fmt.Errorf("manifest media type %s (Docker schema 1) is not supported", mt)
	default:
		return nil, fmt.Errorf("manifest media type %q is not an image manifest", mt)
	}
	cfg, err := readConfig(src, m.Config, source)
	if err != nil {
		return nil, err
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(cfg))
	if err != nil {
		return nil, fmt.Errorf("parsing config %s: %w", m.Config.Digest, err)
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("config %s lists %d diff IDs for the manifest's %d layers", m.Config.Digest, len(cf.RootFS.DiffIDs), len(m.Layers))
	}
	img := &image{rawManifest: raw, rawConfig: cfg, mediaType: mt}
	for i, d := range m.Layers {
		inner, err := src.LayerByDigest(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", d.Digest, err)
		}
		img.layers = append(img.layers, &verifiedLayer{inner: inner, desc: d, diffID: cf.RootFS.DiffIDs[i], source: source})
	}
	return img, nil
}

// readConfig reads the config blob d of src, verifying it as a layer blob is
// verified (so a corrupt config is a *DigestError naming it).
func readConfig(src v1.Image, d v1.Descriptor, source string) ([]byte, error) {
	size := d.Size
	if size <= 0 {
		size = -1
	}
	var r io.Reader
	if l, err := src.LayerByDigest(d.Digest); err == nil {
		rc, err := l.Compressed()
		if err != nil {
			return nil, fmt.Errorf("config %s from %s: %w", d.Digest, source, err)
		}
		defer rc.Close()
		r = rc
	} else {
		b, err := src.RawConfigFile()
		if err != nil {
			return nil, fmt.Errorf("config %s from %s: %w", d.Digest, source, err)
		}
		r = bytes.NewReader(b)
	}
	vr := &verifyReader{rc: io.NopCloser(r), h: sha256.New(), want: d.Digest, size: size, kind: "config", source: source}
	return io.ReadAll(vr) // bounded by the descriptor's size when it has one
}

// verifiedLayer streams a layer and fails the read that would end it when the
// content does not match the manifest's digest and size (Compressed) or the
// config's diff ID (Uncompressed, which also verifies the compressed digest).
type verifiedLayer struct {
	inner  v1.Layer
	desc   v1.Descriptor
	diffID v1.Hash
	source string
}

func (l *verifiedLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *verifiedLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *verifiedLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *verifiedLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }

// Compressed returns the layer blob as stored. The final Read returns a
// *DigestError instead of io.EOF when the blob does not match.
func (l *verifiedLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.inner.Compressed()
	if err != nil {
		return nil, fmt.Errorf("layer %s from %s: %w", l.desc.Digest, l.source, err)
	}
	return &verifyReader{rc: rc, h: sha256.New(), want: l.desc.Digest, size: l.desc.Size, kind: "layer", source: l.source}, nil
}

// Uncompressed returns the layer's tar stream, decompressing gzip or zstd
// (found from the content, not the media type). The final Read fails with a
// *DigestError when either the blob or the tar does not match.
func (l *verifiedLayer) Uncompressed() (io.ReadCloser, error) {
	crc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	r, closeDec, err := decompress(crc)
	if err != nil {
		crc.Close()
		return nil, fmt.Errorf("layer %s from %s: %w", l.desc.Digest, l.source, err)
	}
	return &diffIDReader{r: r, compressed: crc, closeDec: closeDec, h: sha256.New(), want: l.diffID, source: l.source}, nil
}

// verifyReader hashes what it reads and checks digest and size at the end.
type verifyReader struct {
	rc     io.ReadCloser
	h      hash.Hash
	n      int64
	want   v1.Hash
	size   int64 // -1: unknown
	kind   string
	source string
	err    error // sticky final result
}

func (r *verifyReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.rc.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	switch {
	case r.size >= 0 && r.n > r.size:
		r.err = r.mismatch(nil)
		return n, r.err
	case err == io.EOF:
		if r.size >= 0 && r.n != r.size {
			r.err = r.mismatch(nil)
		} else if got := r.sum(); got != r.want {
			r.err = r.mismatch(nil)
		} else {
			r.err = io.EOF
		}
		return n, r.err
	case err != nil:
		// go-containerregistry verifies remote blobs too and may report the
		// mismatch first, in its own words: when all the bytes have been
		// read, say which blob and that its digest is wrong.
		if (r.size < 0 || r.n == r.size) && r.sum() != r.want {
			r.err = r.mismatch(err)
		} else {
			r.err = fmt.Errorf("%s %s from %s: %w", r.kind, r.want, r.source, err)
		}
		return n, r.err
	}
	return n, nil
}

func (r *verifyReader) sum() v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(r.h.Sum(nil))}
}

func (r *verifyReader) mismatch(also error) error {
	return &DigestError{Kind: r.kind, Digest: r.want.String(), Got: r.sum().String(), Size: r.n, WantSize: r.size, Source: r.source, Err: also}
}

func (r *verifyReader) Close() error { return r.rc.Close() }

// diffIDReader hashes a decompressed layer; at its end it drains the
// compressed reader (so that the blob digest is checked too) and compares the
// diff ID.
type diffIDReader struct {
	r          io.Reader
	compressed io.ReadCloser
	closeDec   func()
	h          hash.Hash
	n          int64
	want       v1.Hash
	source     string
	err        error
}

func (r *diffIDReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.r.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	if err == nil {
		return n, nil
	}
	if err != io.EOF {
		// A corrupt blob often fails decompression before its digest can be
		// checked: check it now, so the error says which blob is bad.
		if _, derr := io.Copy(io.Discard, r.compressed); derr != nil && errors.Is(derr, ErrDigestMismatch) {
			r.err = derr
		} else {
			r.err = fmt.Errorf("uncompressed layer %s from %s: %w", r.want, r.source, err)
		}
		return n, r.err
	}
	if _, derr := io.Copy(io.Discard, r.compressed); derr != nil {
		r.err = derr
		return n, r.err
	}
	if got := (v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(r.h.Sum(nil))}); got != r.want {
		r.err = &DigestError{Kind: "uncompressed layer", Digest: r.want.String(), Got: got.String(), Size: r.n, WantSize: -1, Source: r.source}
		return n, r.err
	}
	r.err = io.EOF
	return n, io.EOF
}

func (r *diffIDReader) Close() error {
	r.closeDec()
	return r.compressed.Close()
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// decompress detects gzip or zstd from r's first bytes; anything else is
// returned as is (an uncompressed tar).
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(4)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, nil, err
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

// compressionOf tells a layer's compression from its media type: "gzip",
// "zstd", "" for an uncompressed tar, or "?" when unknown.
func compressionOf(mt types.MediaType) string {
	switch mt {
	case types.DockerLayer, types.DockerForeignLayer, types.OCILayer, types.OCIRestrictedLayer:
		return string(Gzip)
	case types.OCILayerZStd:
		return string(Zstd)
	case types.DockerUncompressedLayer, types.OCIUncompressedLayer, types.OCIUncompressedRestrictedLayer:
		return ""
	}
	return "?"
}
