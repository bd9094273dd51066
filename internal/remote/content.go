package remote

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

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
