package oci

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/internal/atomicfile"
	"github.com/snapbuild/snapbuild/internal/dirlock"
)

// Transport names a destination kind, as in skopeo's transport syntax.
type Transport string

const (
	// TransportLayout is an OCI image layout directory: oci:DIR[:TAG].
	TransportLayout Transport = "oci"
	// TransportArchive is a tar of an OCI image layout: oci-archive:FILE[:TAG].
	TransportArchive Transport = "oci-archive"
)

// Reference is a parsed export destination.
type Reference struct {
	Transport Transport
	Path      string // directory or archive file
	Tag       string // org.opencontainers.image.ref.name; "" for none
}

// ParseReference parses "oci:DIR[:TAG]" or "oci-archive:FILE[:TAG]". As in
// skopeo, the path ends at the first ":" and the tag is everything after it
// (so a path cannot contain ":").
func ParseReference(s string) (Reference, error) {
	transport, rest, ok := strings.Cut(s, ":")
	if !ok || rest == "" {
		return Reference{}, fmt.Errorf("destination %q: want oci:DIR[:TAG] or oci-archive:FILE[:TAG]", s)
	}
	ref := Reference{Transport: Transport(transport), Path: rest}
	switch ref.Transport {
	case TransportLayout, TransportArchive:
	default:
		return Reference{}, fmt.Errorf("destination %q: unknown transport %q: use oci:DIR[:TAG] or oci-archive:FILE[:TAG]", s, transport)
	}
	if p, tag, ok := strings.Cut(rest, ":"); ok {
		ref.Path, ref.Tag = p, tag
		if ref.Tag == "" {
			return Reference{}, fmt.Errorf("destination %q: empty tag after ':'", s)
		}
	}
	if ref.Path == "" {
		return Reference{}, fmt.Errorf("destination %q: empty path", s)
	}
	return ref, nil
}

func (r Reference) String() string {
	if r.Tag == "" {
		return string(r.Transport) + ":" + r.Path
	}
	return string(r.Transport) + ":" + r.Path + ":" + r.Tag
}

// ExportOption tunes Export.
type ExportOption func(*exportOptions)

type exportOptions struct {
	annotations map[string]string
}

// WithIndexAnnotations adds ann to the image's entry in index.json (e.g.
// io.containerd.image.name, so that `ctr images import` and `podman load`
// name the image). An org.opencontainers.image.ref.name in ann tags the
// entry when the Reference has no Tag; a Reference's Tag wins over it.
//
// The default is no annotations but the Tag's.
func WithIndexAnnotations(ann map[string]string) ExportOption {
	return func(o *exportOptions) { o.annotations = ann }
}

// Export writes the image whose manifest is manifest to ref. An existing OCI
// layout directory is extended: its other images stay, an image with the same
// tag is replaced. An oci-archive file is written to a temporary name and
// renamed, so a failed export leaves no half-written archive.
func (s *Store) Export(manifest ocispec.Descriptor, ref Reference, opts ...ExportOption) error {
	var o exportOptions
	for _, opt := range opts {
		opt(&o)
	}
	ann := map[string]string{}
	for k, v := range o.annotations {
		ann[k] = v
	}
	if ref.Tag != "" {
		ann[ocispec.AnnotationRefName] = ref.Tag
	}
	switch ref.Transport {
	case TransportLayout:
		return s.exportLayout(manifest, ref.Path, ann)
	case TransportArchive:
		return s.exportArchive(manifest, ref, ann)
	}
	return fmt.Errorf("export: unknown transport %q", ref.Transport)
}

// blobsOf lists the manifest, its config and its layers.
func (s *Store) blobsOf(manifest ocispec.Descriptor) ([]digest.Digest, error) {
	m, err := s.Manifest(manifest.Digest)
	if err != nil {
		return nil, err
	}
	ds := []digest.Digest{manifest.Digest, m.Config.Digest}
	for _, l := range m.Layers {
		ds = append(ds, l.Digest)
	}
	return ds, nil
}

// indexEntry is manifest's entry in index.json, annotated with ann (nil
// when empty).
func indexEntry(manifest ocispec.Descriptor, ann map[string]string) ocispec.Descriptor {
	d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: manifest.Digest, Size: manifest.Size}
	if len(ann) > 0 {
		d.Annotations = ann
	}
	return d
}

func (s *Store) exportLayout(manifest ocispec.Descriptor, dir string, ann map[string]string) error {
	tag := ann[ocispec.AnnotationRefName]
	blobs, err := s.blobsOf(manifest)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return fmt.Errorf("export %s: %w", dir, err)
	}
	// Exports into one layout take turns: each reads index.json and
	// writes it back, keeping the others' tags.
	unlock, err := dirlock.Lock(dir)
	if err != nil {
		return fmt.Errorf("export %s: %w", dir, err)
	}
	defer unlock()
	for _, d := range blobs {
		dst := filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		if err := copyFile(s.Path(d), dst); err != nil {
			return fmt.Errorf("export %s: blob %s: %w", dir, d, err)
		}
	}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	if b, err := os.ReadFile(filepath.Join(dir, ocispec.ImageIndexFile)); err == nil {
		if err := json.Unmarshal(b, &idx); err != nil {
			return fmt.Errorf("export %s: existing index.json: %w", dir, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("export %s: %w", dir, err)
	}
	var kept []ocispec.Descriptor
	for _, m := range idx.Manifests {
		name := m.Annotations[ocispec.AnnotationRefName]
		if (tag != "" && name == tag) || (tag == "" && name == "" && m.Digest == manifest.Digest) {
			continue
		}
		kept = append(kept, m)
	}
	idx.Manifests = append(kept, indexEntry(manifest, ann))
	if err := atomicfile.Write(filepath.Join(dir, ocispec.ImageLayoutFile), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return err
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, ocispec.ImageIndexFile), b, 0o644)
}

func (s *Store) exportArchive(manifest ocispec.Descriptor, ref Reference, ann map[string]string) error {
	blobs, err := s.blobsOf(manifest)
	if err != nil {
		return err
	}
	dir := filepath.Dir(ref.Path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(ref.Path)+".tmp-")
	if err != nil {
		return fmt.Errorf("export %s: %w", ref, err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	tw := tar.NewWriter(f)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, Typeflag: tar.TypeDir, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	for _, d := range blobs {
		if err := s.tarBlob(tw, d); err != nil {
			return fmt.Errorf("export %s: %w", ref, err)
		}
	}
	if err := add(ocispec.ImageLayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{indexEntry(manifest, ann)}}
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := add(ocispec.ImageIndexFile, b); err != nil {
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
	if err := os.Rename(f.Name(), ref.Path); err != nil {
		return fmt.Errorf("export %s: %w", ref, err)
	}
	return nil
}

func (s *Store) tarBlob(tw *tar.Writer, d digest.Digest) error {
	f, err := s.Open(d)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + d.Encoded(), Mode: 0o444, Size: st.Size(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// copyFile copies src to dst through a temporary file; it hard-links when both
// are on one filesystem.
func copyFile(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Copy(dst, 0o444, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}
