package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Store is a content-addressed blob store: blob d lives at
// <root>/blobs/<algorithm>/<hex>. Blobs are written to a temporary file in the
// same directory, hashed while written, and renamed into place, so a blob path
// either holds complete, verified content or does not exist. Blobs are made
// read-only once committed.
type Store struct {
	root string
}

// NewStore opens (creating if needed) the blob store under root.
func NewStore(root string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(root, "blobs", "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("oci store: %w", err)
	}
	return &Store{root: root}, nil
}

// Root is the directory the store was opened on.
func (s *Store) Root() string { return s.root }

// Path is where blob d lives, whether or not it exists.
func (s *Store) Path(d digest.Digest) string {
	return filepath.Join(s.root, "blobs", d.Algorithm().String(), d.Encoded())
}

// Has reports whether blob d is present.
func (s *Store) Has(d digest.Digest) bool {
	_, err := os.Stat(s.Path(d))
	return err == nil
}

// Open opens blob d for reading. A missing blob is an error wrapping
// os.ErrNotExist.
func (s *Store) Open(d digest.Digest) (*os.File, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("oci store: %w", err)
	}
	f, err := os.Open(s.Path(d))
	if err != nil {
		return nil, fmt.Errorf("oci store: blob %s: %w", d, err)
	}
	return f, nil
}

// ReadBlob returns the content of blob d.
func (s *Store) ReadBlob(d digest.Digest) ([]byte, error) {
	f, err := s.Open(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	if digest.FromBytes(b) != d {
		return nil, fmt.Errorf("oci store: blob %s is corrupt: its content does not match its digest", d)
	}
	return b, nil
}

// WriteBlob stores data and returns its descriptor with the given media type.
func (s *Store) WriteBlob(mediaType string, data []byte) (ocispec.Descriptor, error) {
	d := digest.FromBytes(data)
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
	if s.Has(d) {
		return desc, nil
	}
	w, err := s.newWriter()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer w.abort()
	if _, err := w.Write(data); err != nil {
		return ocispec.Descriptor{}, err
	}
	if _, err := w.commit(); err != nil {
		return ocispec.Descriptor{}, err
	}
	return desc, nil
}

// WriteBlobFrom stores the content of r, which must have digest want (and
// size, when size >= 0), and returns its descriptor with the given media
// type. A present blob is not read again. A digest or size mismatch is an
// error naming both digests, and nothing is stored; r is read to its end.
func (s *Store) WriteBlobFrom(mediaType string, r io.Reader, want digest.Digest, size int64) (ocispec.Descriptor, error) {
	if err := want.Validate(); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("oci store: blob digest %q: %w", want, err)
	}
	if want.Algorithm() != digest.SHA256 {
		return ocispec.Descriptor{}, fmt.Errorf("oci store: blob %s: only sha256 digests are supported", want)
	}
	if s.Has(want) {
		return ocispec.Descriptor{MediaType: mediaType, Digest: want, Size: s.size(want)}, nil
	}
	w, err := s.newWriter()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer w.abort()
	if _, err := io.Copy(w, r); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("oci store: blob %s: %w", want, err)
	}
	if got := w.dg.Digest(); got != want {
		return ocispec.Descriptor{}, fmt.Errorf("oci store: blob %s: digest mismatch: the content read has digest %s", want, got)
	}
	if size >= 0 && w.n != size {
		return ocispec.Descriptor{}, fmt.Errorf("oci store: blob %s: size mismatch: %d bytes read, %d expected", want, w.n, size)
	}
	n := w.n
	if _, err := w.commit(); err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: want, Size: n}, nil
}

func (s *Store) size(d digest.Digest) int64 {
	fi, err := os.Stat(s.Path(d))
	if err != nil {
		return -1
	}
	return fi.Size()
}

// WriteJSON marshals v and stores it as a blob of the given media type.
func (s *Store) WriteJSON(mediaType string, v any) (ocispec.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return s.WriteBlob(mediaType, b)
}

// ReadJSON reads blob d and unmarshals it into v.
func (s *Store) ReadJSON(d digest.Digest, v any) error {
	b, err := s.ReadBlob(d)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("oci store: blob %s: %w", d, err)
	}
	return nil
}

// CleanTemp removes temporary files left by writers of a killed process. Call it
// only while holding the store's exclusive lock.
func (s *Store) CleanTemp() error {
	dir := filepath.Join(s.root, "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			errs = append(errs, os.Remove(filepath.Join(dir, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// Remove deletes blob d; a blob that is not there is no error. Call it only
// while holding the store's exclusive lock, after removing every record that
// names d.
func (s *Store) Remove(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("oci store: %w", err)
	}
	if err := os.Remove(s.Path(d)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("oci store: remove blob %s: %w", d, err)
	}
	return nil
}

// Walk calls fn with the digest and size in bytes of every committed blob,
// in no particular order (temporary files are skipped). An error from fn
// stops the walk and is returned.
func (s *Store) Walk(fn func(d digest.Digest, size int64) error) error {
	dir := filepath.Join(s.root, "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("oci store: %w", err)
	}
	for _, e := range ents {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if !e.Type().IsRegular() || d.Validate() != nil {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("oci store: %w", err)
		}
		if err := fn(d, fi.Size()); err != nil {
			return err
		}
	}
	return nil
}

// blobWriter hashes what it writes into a temporary file and renames it to its
// digest on commit.
type blobWriter struct {
	s       *Store
	f       *os.File
	dg      digest.Digester
	n       int64
	settled bool
}

func (s *Store) newWriter() (*blobWriter, error) {
	f, err := os.CreateTemp(filepath.Join(s.root, "blobs", "sha256"), ".tmp-")
	if err != nil {
		return nil, fmt.Errorf("oci store: %w", err)
	}
	return &blobWriter{s: s, f: f, dg: digest.SHA256.Digester()}, nil
}

func (w *blobWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.dg.Hash().Write(p[:n])
	w.n += int64(n)
	return n, err
}

// commit syncs, closes and renames the blob into place, returning its digest.
func (w *blobWriter) commit() (digest.Digest, error) {
	d := w.dg.Digest()
	if err := w.f.Sync(); err != nil {
		return "", fmt.Errorf("oci store: sync blob: %w", err)
	}
	if err := w.f.Chmod(0o444); err != nil {
		return "", fmt.Errorf("oci store: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return "", fmt.Errorf("oci store: %w", err)
	}
	if err := os.Rename(w.f.Name(), w.s.Path(d)); err != nil {
		return "", fmt.Errorf("oci store: commit blob %s: %w", d, err)
	}
	w.settled = true
	return d, nil
}

// abort removes the temporary file unless the blob was committed.
func (w *blobWriter) abort() {
	if !w.settled {
		w.f.Close()
		os.Remove(w.f.Name())
	}
}
