package overlay

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	"go.podman.io/storage/pkg/archive"
	"go.podman.io/storage/pkg/unshare"
)

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// UserXattr must match the snapshot store's overlay xattr namespace
	// (user.overlay.* in a user namespace, trusted.overlay.* otherwise); it
	// is where opaque directories are marked.
	UserXattr bool
}

// Apply unpacks layer, an uncompressed OCI layer tar, into upper: the empty
// upper dir of a snapshot whose lowers are the layers below, not mounted.
// This is containerd's and containers/storage's way of applying a layer to
// an overlay snapshot: entries are written into upper as they are, OCI
// whiteouts (".wh.NAME") become overlay whiteouts (a 0/0 character device,
// which Linux 5.8+ lets a user namespace create) and opaque markers
// (".wh..wh..opq") the overlay opaque xattr of their directory, so that the
// snapshot's overlay view is the image's filesystem.
//
// The unpacking itself is containers/storage's pkg/archive (as podman's
// overlay driver uses it): entries that name a path outside upper ("../x")
// are an error, and paths are resolved inside upper (a symlink in the layer
// pointing to "/" or out of it is followed within upper, never to the
// host). In a user namespace, device nodes are skipped and ownership must
// fit the namespace's ID map.
//
// It returns the layer's diffID: the sha256 of the whole tar stream.
// Errors name the cause; on error, upper holds a partial layer and must be
// discarded.
func Apply(ctx context.Context, upper string, layer io.Reader, o ApplyOptions) (digest.Digest, error) {
	if o.UserXattr != unshare.IsRootless() {
		// containers/storage picks the xattr namespace by IsRootless.
		return "", fmt.Errorf("overlay apply: the snapshot store uses %s overlay xattrs, the unpacker %s: run the builder as the store expects",
			xattrNS(o.UserXattr), xattrNS(unshare.IsRootless()))
	}
	h := sha256.New()
	r := io.TeeReader(&ctxReader{ctx: ctx, r: layer}, h)
	err := archive.Unpack(r, upper, &archive.TarOptions{
		WhiteoutFormat: archive.OverlayWhiteoutFormat,
		InUserNS:       unshare.IsRootless(),
	})
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("overlay apply: %w", err)
	}
	// The tar reader stops at the end-of-archive marker: hash the rest too.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return "", fmt.Errorf("overlay apply: %w", err)
	}
	return digest.NewDigest(digest.SHA256, h), nil
}

func xattrNS(user bool) string {
	if user {
		return "user.overlay.*"
	}
	return "trusted.overlay.*"
}

// ctxReader fails reads once ctx is done, so that a cancelled build stops
// unpacking promptly.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, err
	}
	return n, err
}
