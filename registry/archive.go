package registry

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// An OCI archive is read in place: one pass over the tar records where each
// file's content starts, and blobs are then read as sections of the file.
// go-containerregistry reads OCI layouts only from directories.

type tarIndex struct {
	path    string
	entries map[string]tarEntry
}

type tarEntry struct{ off, size int64 }

func indexTar(p string) (*tarIndex, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t := &tarIndex{path: p, entries: map[string]tarEntry{}}
	tr := tar.NewReader(f) // f is an io.Seeker: tar skips file content by seeking
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading archive %s: %w", p, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		// archive/tar does not read ahead, so the file offset now is where
		// this entry's content starts.
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		t.entries[path.Clean(strings.TrimPrefix(hdr.Name, "./"))] = tarEntry{off: off, size: hdr.Size}
	}
	return t, nil
}

func (t *tarIndex) open(name string) (io.ReadCloser, int64, error) {
	e, ok := t.entries[name]
	if !ok {
		return nil, 0, fmt.Errorf("archive %s has no %s: %w", t.path, name, os.ErrNotExist)
	}
	f, err := os.Open(t.path)
	if err != nil {
		return nil, 0, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, e.off, e.size), f}, e.size, nil
}

func (t *tarIndex) read(name string) ([]byte, error) {
	rc, size, err := t.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > 64<<20 {
		return nil, fmt.Errorf("archive %s: %s is %d bytes, too large for a manifest or config", t.path, name, size)
	}
	return io.ReadAll(rc)
}

func blobName(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// openOCIArchive returns the index.json of the OCI archive at p.
func openOCIArchive(p string) (v1.ImageIndex, error) {
	t, err := indexTar(p)
	if err != nil {
		return nil, err
	}
	raw, err := t.read("index.json")
	if err != nil {
		return nil, fmt.Errorf("not an OCI archive: %w", err)
	}
	return &archiveIndex{t: t, raw: raw}, nil
}

// archiveIndex is an index (index.json or a nested one) inside an archive.
type archiveIndex struct {
	t   *tarIndex
	raw []byte
}

func (a *archiveIndex) MediaType() (types.MediaType, error) {
	var m struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	if err := json.Unmarshal(a.raw, &m); err != nil || m.MediaType == "" {
		return types.OCIImageIndex, nil
	}
	return m.MediaType, nil
}
func (a *archiveIndex) Digest() (v1.Hash, error)     { return sha256Hash(a.raw), nil }
func (a *archiveIndex) Size() (int64, error)         { return int64(len(a.raw)), nil }
func (a *archiveIndex) RawManifest() ([]byte, error) { return bytes.Clone(a.raw), nil }
func (a *archiveIndex) IndexManifest() (*v1.IndexManifest, error) {
	return v1.ParseIndexManifest(bytes.NewReader(a.raw))
}

func (a *archiveIndex) Image(h v1.Hash) (v1.Image, error) {
	raw, err := a.t.read(blobName(h))
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&archiveImage{t: a.t, raw: raw})
}

func (a *archiveIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	raw, err := a.t.read(blobName(h))
	if err != nil {
		return nil, err
	}
	return &archiveIndex{t: a.t, raw: raw}, nil
}

// archiveImage is partial.CompressedImageCore over an archive.
type archiveImage struct {
	t   *tarIndex
	raw []byte
}

func (a *archiveImage) RawManifest() ([]byte, error) { return bytes.Clone(a.raw), nil }

func (a *archiveImage) MediaType() (types.MediaType, error) {
	m, err := v1.ParseManifest(bytes.NewReader(a.raw))
	if err != nil {
		return "", err
	}
	if m.MediaType == "" {
		return types.OCIManifestSchema1, nil
	}
	return m.MediaType, nil
}

func (a *archiveImage) RawConfigFile() ([]byte, error) {
	m, err := v1.ParseManifest(bytes.NewReader(a.raw))
	if err != nil {
		return nil, err
	}
	return a.t.read(blobName(m.Config.Digest))
}

func (a *archiveImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	m, err := v1.ParseManifest(bytes.NewReader(a.raw))
	if err != nil {
		return nil, err
	}
	for _, d := range m.Layers {
		if d.Digest == h {
			return &archiveLayer{t: a.t, desc: d}, nil
		}
	}
	if m.Config.Digest == h {
		return &archiveLayer{t: a.t, desc: m.Config}, nil
	}
	return nil, fmt.Errorf("archive %s: manifest has no blob %s", a.t.path, h)
}

type archiveLayer struct {
	t    *tarIndex
	desc v1.Descriptor
}

func (l *archiveLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *archiveLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *archiveLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *archiveLayer) Compressed() (io.ReadCloser, error) {
	rc, _, err := l.t.open(blobName(l.desc.Digest))
	return rc, err
}

// writeOCIArchive writes img as an OCI layout in a tar at p, its index
// entry annotated with ann (see IndexAnnotations; nil for none). The archive
// is written to a temporary file beside p and renamed, so a failure leaves
// no partial archive (and an existing one unchanged).
func writeOCIArchive(img v1.Image, p string, ann map[string]string) (err error) {
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	tw := tar.NewWriter(f)
	file := func(name string, mode int64, r io.Reader, size int64) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: size, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, Typeflag: tar.TypeDir, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	const ociLayout = `{"imageLayoutVersion":"1.0.0"}`
	if err := file("oci-layout", 0o644, strings.NewReader(ociLayout), int64(len(ociLayout))); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	seen := map[v1.Hash]bool{}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		if seen[d] {
			continue
		}
		seen[d] = true
		size, err := l.Size()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		err = file(blobName(d), 0o444, rc, size)
		rc.Close()
		if err != nil {
			return fmt.Errorf("layer %s: %w", d, err)
		}
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if err := file(blobName(sha256Hash(cfg)), 0o444, bytes.NewReader(cfg), int64(len(cfg))); err != nil {
		return err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	if err := file(blobName(sha256Hash(raw)), 0o444, bytes.NewReader(raw), int64(len(raw))); err != nil {
		return err
	}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{{
		MediaType: mt, Digest: sha256Hash(raw), Size: int64(len(raw)),
	}}}
	if len(ann) > 0 {
		idx.Manifests[0].Annotations = ann
	}
	ib, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := file("index.json", 0o644, bytes.NewReader(ib), int64(len(ib))); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return errors.Join(err, os.Remove(f.Name()))
	}
	return nil
}
