package overlay

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

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
	// SkippedDevice, when set, is called after a successful Apply in a user
	// namespace with the layer path ("dev/null") of each character or
	// block device the layer holds, in layer order: mknod is not allowed
	// there, so the unpacker skips them and the snapshot lacks them. Not
	// called as real root, where they are created.
	SkippedDevice func(name string)
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
// host). In a user namespace, device nodes are skipped (reported through
// ApplyOptions.SkippedDevice) and ownership must fit the namespace's ID map.
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
	var src io.Reader = &ctxReader{ctx: ctx, r: layer}
	list := o.SkippedDevice != nil && unshare.IsRootless()
	var (
		devices []string
		pw      *io.PipeWriter
		done    = make(chan struct{})
	)
	if list {
		// A second tar reader lists the devices from a copy of the
		// stream; it reads to the end so that the copy never blocks.
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		go func() {
			defer close(done)
			devices = listDevices(pr)
			_, _ = io.Copy(io.Discard, pr)
		}()
		src = io.TeeReader(src, pw)
	}
	h := sha256.New()
	r := io.TeeReader(src, h)
	err := archive.Unpack(r, upper, &archive.TarOptions{
		WhiteoutFormat: archive.OverlayWhiteoutFormat,
		InUserNS:       unshare.IsRootless(),
	})
	if err == nil {
		// The tar reader stops at the end-of-archive marker: hash the
		// rest too.
		_, err = io.Copy(io.Discard, r)
	}
	if list {
		pw.Close()
		<-done
	}
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("overlay apply: %w", err)
	}
	for _, d := range devices {
		o.SkippedDevice(d)
	}
	return digest.NewDigest(digest.SHA256, h), nil
}

// listDevices returns the names of the character and block devices in the
// tar stream r, stopping at its end or at the first error.
func listDevices(r io.Reader) []string {
	var names []string
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err != nil {
			return names
		}
		if hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock {
			names = append(names, strings.TrimPrefix(path.Clean("/"+hdr.Name), "/"))
		}
	}
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
