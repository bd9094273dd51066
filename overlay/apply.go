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
	"go.podman.io/storage/pkg/idtools"
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
	// SquashOwners unpacks every entry as owned by 0:0, whatever owner
	// the layer gives it: for a user namespace that maps only ID 0, where
	// any other owner cannot be set. It is what podman's
	// ignore_chown_errors leaves on disk, without a warning per entry.
	// Modes (setuid bits included), xattrs and content are kept. The
	// default applies the layer's owners.
	SquashOwners bool
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
// An entry the unpacker fails on is named in the error, with why it is
// refused where that can be told, and the unpacker's error wrapped:
//
//	overlay apply: entry "usr/bin/python3": refused: hard link to "usr/bin/python3.11", which no earlier entry of this layer wrote (...): no such file or directory
//	overlay apply: entry "passwd": refused: hard link to "../../etc/passwd", outside the image's root filesystem: invalid hardlink "../../etc/passwd"
//
// A hard link must point to a file that an earlier entry of the same
// layer wrote: overlayfs keeps each layer in a directory of its own, so a
// file of a lower layer cannot be linked to (containerd's and
// containers/storage's overlay drivers fail on such a layer too). The
// caller adds the layer's digest. On error, upper holds a partial layer
// and must be discarded.
func Apply(ctx context.Context, upper string, layer io.Reader, o ApplyOptions) (digest.Digest, error) {
	if o.UserXattr != unshare.IsRootless() {
		// containers/storage picks the xattr namespace by IsRootless.
		return "", fmt.Errorf("overlay apply: the snapshot store uses %s overlay xattrs, the unpacker %s: run the builder as the store expects",
			xattrNS(o.UserXattr), xattrNS(unshare.IsRootless()))
	}
	var src io.Reader = &ctxReader{ctx: ctx, r: layer}
	// A second tar reader follows a copy of the stream, entry by entry:
	// it lists the devices and knows, when the unpacker fails, the entry
	// it failed on and why that entry cannot be applied. The unpacker's
	// tar reader reads no further than the entry it applies, so neither
	// can this one. It reads to the end so that the copy never blocks.
	pr, pw := io.Pipe()
	chk := &entryChecker{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		chk.follow(pr)
		_, _ = io.Copy(io.Discard, pr)
	}()
	h := sha256.New()
	r := io.TeeReader(io.TeeReader(src, pw), h)
	err := archive.Unpack(r, upper, &archive.TarOptions{
		WhiteoutFormat: archive.OverlayWhiteoutFormat,
		InUserNS:       unshare.IsRootless(),
		ChownOpts:      squashed(o.SquashOwners),
	})
	if err == nil {
		// The tar reader stops at the end-of-archive marker: hash the
		// rest too.
		_, err = io.Copy(io.Discard, r)
	}
	pw.Close()
	<-done
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if chk.last == "" {
			return "", fmt.Errorf("overlay apply: %w", err)
		}
		if chk.why != "" {
			return "", fmt.Errorf("overlay apply: entry %q: refused: %s: %w", chk.last, chk.why, err)
		}
		return "", fmt.Errorf("overlay apply: entry %q: %w", chk.last, err)
	}
	if o.SkippedDevice != nil && unshare.IsRootless() {
		for _, d := range chk.devices {
			o.SkippedDevice(d)
		}
	}
	return digest.NewDigest(digest.SHA256, h), nil
}

// squashed is the owner every entry gets: 0:0 when squash, else nil (the
// layer's owners).
func squashed(squash bool) *idtools.IDPair {
	if !squash {
		return nil
	}
	return &idtools.IDPair{UID: 0, GID: 0}
}

// entryChecker follows a layer's tar stream as the unpacker reads it and
// says what is wrong with the last entry it read, by the rules of the OCI
// image spec's changeset layers as overlayfs applies them: every path
// stays inside the root, and a hard link points to a file that an earlier
// entry of the same layer wrote (overlayfs keeps each layer in a
// directory of its own: a file of a lower layer, or of nowhere, cannot be
// linked to; Docker's and containerd's overlay snapshotters refuse them
// too).
type entryChecker struct {
	last    string   // the last entry read, cleaned, relative to the root
	why     string   // what is wrong with it, or ""
	devices []string // the character and block devices, in layer order

	written map[string]byte // the entries of the layer so far, by path: their tar type
}

// follow reads the tar stream r up to its end or its first error.
func (c *entryChecker) follow(r io.Reader) {
	c.written = map[string]byte{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err != nil {
			return
		}
		c.entry(hdr)
	}
}

// entry notes hdr and what is wrong with it.
func (c *entryChecker) entry(hdr *tar.Header) {
	name, inside := inRoot(hdr.Name)
	c.last, c.why = name, ""
	if !inside {
		c.last = hdr.Name
		c.why = "its path is outside the image's root filesystem"
		return
	}
	base, dir := path.Base(name), path.Dir(name)
	switch {
	case base == ".wh..wh..opq":
		return
	case strings.HasPrefix(base, ".wh."):
		gone := path.Join(dir, strings.TrimPrefix(base, ".wh."))
		for p := range c.written {
			if p == gone || strings.HasPrefix(p, gone+"/") {
				delete(c.written, p)
			}
		}
		return
	}
	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock:
		c.devices = append(c.devices, name)
	case tar.TypeLink:
		target, inside := inRoot(hdr.Linkname)
		typ, held := c.written[target]
		switch {
		case !inside:
			c.why = fmt.Sprintf("hard link to %q, outside the image's root filesystem", hdr.Linkname)
		case !held:
			c.why = fmt.Sprintf("hard link to %q, which no earlier entry of this layer wrote (a hard link may point only to a file of its own layer: overlayfs keeps each layer apart, so a file of a lower layer cannot be linked to)", target)
		case typ == tar.TypeDir:
			c.why = fmt.Sprintf("hard link to %q, a directory", target)
		}
		c.written[name] = typ // a link is what it links to
		return
	}
	c.written[name] = hdr.Typeflag
}

// inRoot cleans name, a tar entry's path or a hard link's target, to a path
// relative to the root ("" for the root itself), as the unpacker resolves
// it, and reports whether it stays inside the root: "../x" does not, "/x"
// and "a/../x" are "x".
func inRoot(name string) (string, bool) {
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return c, false
	}
	c = strings.TrimPrefix(path.Clean("/"+c), "/")
	return c, true
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
