package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/oci"
)

// blobStore is a read-only content.Store over snapbuild's blob store: what
// buildkitd reads the oci-layout sources from, through the session. Writes,
// deletes and label updates fail with errdefs.ErrNotImplemented; a missing
// blob is errdefs.ErrNotFound, as containerd's local store reports it.
type blobStore struct {
	blobs *oci.Store
}

// ContentStore returns a read-only content.Store over blobs.
func ContentStore(blobs *oci.Store) content.Store { return blobStore{blobs} }

func (s blobStore) Info(_ context.Context, d digest.Digest) (content.Info, error) {
	if err := d.Validate(); err != nil {
		return content.Info{}, fmt.Errorf("blob %q: %w: %v", d, errdefs.ErrInvalidArgument, err)
	}
	fi, err := os.Stat(s.blobs.Path(d))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return content.Info{}, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
		}
		return content.Info{}, err
	}
	return content.Info{Digest: d, Size: fi.Size(), CreatedAt: fi.ModTime(), UpdatedAt: fi.ModTime()}, nil
}

func (s blobStore) ReaderAt(_ context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	f, err := s.blobs.Open(desc.Digest)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return readerAt{f, fi.Size()}, nil
}

type readerAt struct {
	*os.File
	size int64
}

func (r readerAt) Size() int64 { return r.size }

func (s blobStore) Walk(ctx context.Context, fn content.WalkFunc, filters ...string) error {
	if len(filters) > 0 {
		return fmt.Errorf("walking the blob store with filters: %w", errdefs.ErrNotImplemented)
	}
	return s.blobs.Walk(func(d digest.Digest, size int64) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(content.Info{Digest: d, Size: size})
	})
}

func (blobStore) Update(context.Context, content.Info, ...string) (content.Info, error) {
	return content.Info{}, fmt.Errorf("the snapbuild blob store is read-only: %w", errdefs.ErrNotImplemented)
}

func (blobStore) Delete(context.Context, digest.Digest) error {
	return fmt.Errorf("the snapbuild blob store is read-only: %w", errdefs.ErrNotImplemented)
}

func (blobStore) Writer(context.Context, ...content.WriterOpt) (content.Writer, error) {
	return nil, fmt.Errorf("the snapbuild blob store is read-only: %w", errdefs.ErrNotImplemented)
}

func (blobStore) Status(context.Context, string) (content.Status, error) {
	return content.Status{}, fmt.Errorf("no ingest: %w", errdefs.ErrNotFound)
}

func (blobStore) ListStatuses(context.Context, ...string) ([]content.Status, error) {
	return nil, nil
}

func (blobStore) Abort(context.Context, string) error {
	return fmt.Errorf("no ingest: %w", errdefs.ErrNotFound)
}

// exportStore is the content store BuildKit's oci exporter writes a
// result into, through the session: snapbuild's blob store. A blob the
// store has is refused with errdefs.ErrAlreadyExists, as containerd's
// stores do, so the exporter never sends it again (a layer's parent layers,
// the bases); a new blob is written to a temporary file under tmp and
// stored at Commit, checked against its digest and size.
type exportStore struct {
	blobStore
	tmp string
}

func (s exportStore) Writer(_ context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return nil, err
		}
	}
	if wo.Desc.Digest != "" && s.blobs.Has(wo.Desc.Digest) {
		return nil, fmt.Errorf("blob %s: %w", wo.Desc.Digest, errdefs.ErrAlreadyExists)
	}
	f, err := os.CreateTemp(s.tmp, "export-")
	if err != nil {
		return nil, err
	}
	return &ingest{blobs: s.blobs, f: f, ref: wo.Ref, desc: wo.Desc, dg: digest.SHA256.Digester(), started: time.Now()}, nil
}

// ingest is one blob being written into an exportStore.
type ingest struct {
	blobs   *oci.Store
	f       *os.File
	ref     string
	desc    ocispec.Descriptor
	dg      digest.Digester
	n       int64
	started time.Time
}

func (w *ingest) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.dg.Hash().Write(p[:n])
	w.n += int64(n)
	return n, err
}

func (w *ingest) Digest() digest.Digest { return w.dg.Digest() }

func (w *ingest) Status() (content.Status, error) {
	return content.Status{Ref: w.ref, Offset: w.n, Total: w.desc.Size, Expected: w.desc.Digest, StartedAt: w.started, UpdatedAt: time.Now()}, nil
}

func (w *ingest) Truncate(size int64) error {
	if size != 0 {
		return fmt.Errorf("truncating an export to %d bytes: %w", size, errdefs.ErrNotImplemented)
	}
	if err := w.f.Truncate(0); err != nil {
		return err
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	w.dg, w.n = digest.SHA256.Digester(), 0
	return nil
}

// Commit stores the blob written, which must have size bytes (when size
// > 0) and digest expected (else the descriptor's, when given). The
// writer is closed, whatever the outcome.
func (w *ingest) Commit(_ context.Context, size int64, expected digest.Digest, _ ...content.Opt) error {
	defer w.Close()
	if expected == "" {
		expected = w.desc.Digest
	}
	got := w.dg.Digest()
	if expected != "" && got != expected {
		return fmt.Errorf("exported blob %s: %w: its content has digest %s", expected, errdefs.ErrFailedPrecondition, got)
	}
	if size > 0 && size != w.n {
		return fmt.Errorf("exported blob %s: %w: %d bytes written, %d expected", got, errdefs.ErrFailedPrecondition, w.n, size)
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err := w.blobs.WriteBlobFrom("", w.f, got, w.n)
	return err
}

// Close discards what was written, unless committed.
func (w *ingest) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	os.Remove(w.f.Name())
	w.f = nil
	return err
}
