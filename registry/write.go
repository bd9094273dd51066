package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/snapbuild/snapbuild/internal/dirlock"
)

// Push writes img to the registry dest names (dest.Transport must be Docker);
// see Write.
func Push(ctx context.Context, img v1.Image, dest Reference, opts ...Option) error {
	if dest.Transport != Docker {
		return fmt.Errorf("pushing to %s: not a registry reference (want docker://REF)", dest)
	}
	return Write(ctx, img, dest, opts...)
}

// Write writes img to dest:
//
//   - docker://REF: pushed with the registry protocol. Blobs the repository
//     already has (a HEAD request answers) are not sent again; blobs that
//     only another repository has are sent (images from Pull hide ggcr's
//     cross-repository mounts). Mirrors do not apply to pushes; insecure
//     settings do.
//   - oci:DIR[:TAG]: added to the OCI layout DIR (created if needed); an
//     image with the same TAG is replaced, other images stay.
//   - oci-archive:FILE[:TAG]: a tar of an OCI layout holding only img.
//   - docker-archive:FILE[:REF]: the `docker save` format, loadable by
//     `docker load` and `podman load`; REF becomes its RepoTags entry.
//
// Archives are written to a temporary file beside FILE and renamed. Layer
// blobs are streamed from img and, when they come from Pull, verified as they
// go: a blob that does not match fails the write. OCI outputs get OCI media
// types (a Docker schema 2 manifest is converted; layer bytes are unchanged);
// WithCompression recompresses layers. Errors name dest; credentials never
// appear in them.
func Write(ctx context.Context, img v1.Image, dest Reference, opts ...Option) error {
	o, err := makeOptions(opts...)
	if err != nil {
		return err
	}
	if err := o.write(ctx, img, dest); err != nil {
		return redact(fmt.Errorf("writing %s: %w", dest, err), o.password)
	}
	return nil
}

func (o *options) write(ctx context.Context, img v1.Image, dest Reference) error {
	comp, oci := o.compression, dest.Transport == OCI || dest.Transport == OCIArchive
	if dest.Transport == DockerArchive {
		comp = Gzip
	}
	var ref name.Reference
	if dest.Transport == Docker {
		ref = dest.Name
		host := ref.Context().RegistryStr()
		if o.isInsecure(host) {
			var err error
			if ref, err = name.ParseReference(fullName(ref), name.Insecure); err != nil {
				return err
			}
		}
		// Reach the registry, with push access, before recompressing any
		// layer: a wrong address or missing credentials fail at once.
		if err := o.checkPush(ctx, ref); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp(o.tempDir, "snapbuild-layers-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	out, err := o.convert(ctx, img, comp, oci, tmp)
	if err != nil {
		return err
	}
	switch dest.Transport {
	case Docker:
		ropts, who := o.remoteOptions(ctx, ref.Context())
		return explain(remote.Write(ref, out, ropts...), ref.Context().RegistryStr(), who)
	case OCI:
		return writeLayout(out, dest.Path, IndexAnnotations(dest.Tag, o.imageName))
	case OCIArchive:
		return writeOCIArchive(out, dest.Path, IndexAnnotations(dest.Tag, o.imageName))
	case DockerArchive:
		return writeDockerArchive(out, dest)
	}
	return fmt.Errorf("unknown transport %q", dest.Transport)
}

// writeLayout adds img to the OCI layout dir (created if needed) with the
// index annotations ann: replacing the image of the same tag, or, untagged,
// appended. Writers of one layout take turns (an flock on dir), so that
// exports at once keep every tag. What it writes is readable by all, as
// umoci and skopeo leave a layout: blobs, index.json and oci-layout 0644,
// directories 0755 (go-containerregistry writes blobs through 0600
// temporary files and index.json with its umask's 0755).
func writeLayout(img v1.Image, dir string, ann map[string]string) error {
	unlock, err := dirlock.Lock(dir)
	if err != nil {
		return err
	}
	defer unlock()
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return err
		}
	}
	if tag := ann[AnnotationRefName]; tag == "" {
		err = p.AppendImage(img)
	} else {
		err = p.ReplaceImage(img, match.Annotation(AnnotationRefName, tag), layout.WithAnnotations(ann))
	}
	if err != nil {
		return err
	}
	return layoutModes(dir, img)
}

// layoutModes makes what writeLayout wrote of img in dir readable by all.
// A blob that is already (another writer's, say) is left as it is.
func layoutModes(dir string, img v1.Image) error {
	for _, d := range []string{dir, filepath.Join(dir, "blobs"), filepath.Join(dir, "blobs", "sha256")} {
		if err := ensureMode(d, 0o755, 0o555); err != nil {
			return err
		}
	}
	for _, f := range []string{"index.json", "oci-layout"} {
		if err := ensureMode(filepath.Join(dir, f), 0o644, 0); err != nil {
			return err
		}
	}
	var blobs []v1.Hash
	for _, f := range []func() (v1.Hash, error){img.Digest, img.ConfigName} {
		h, err := f()
		if err != nil {
			return err
		}
		blobs = append(blobs, h)
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		h, err := l.Digest()
		if err != nil {
			return err
		}
		blobs = append(blobs, h)
	}
	for _, h := range blobs {
		if err := ensureMode(filepath.Join(dir, "blobs", h.Algorithm, h.Hex), 0o644, 0o444); err != nil {
			return err
		}
	}
	return nil
}

// ensureMode gives path the permission bits mode when it lacks any bit of
// keep (keep 0: unless they are mode already). A file of another owner,
// which only its owner may chmod, is left as it is.
func ensureMode(path string, mode, keep os.FileMode) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	perm := fi.Mode().Perm()
	if perm == mode || (keep != 0 && perm&keep == keep) {
		return nil
	}
	if err := os.Chmod(path, mode); err != nil && !errors.Is(err, os.ErrPermission) {
		return err
	}
	return nil
}

func writeDockerArchive(img v1.Image, dest Reference) (err error) {
	ref := dest.Name
	if ref == nil {
		// No RepoTags: the key only needs to be a reference that is not a
		// tag.
		d, err := img.ConfigName()
		if err != nil {
			return err
		}
		if ref, err = name.NewDigest("unnamed@" + d.String()); err != nil {
			return err
		}
	}
	f, err := os.CreateTemp(filepath.Dir(dest.Path), "."+filepath.Base(dest.Path)+".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := tarball.Write(ref, img, f); err != nil {
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
	return os.Rename(f.Name(), dest.Path)
}

// convert returns img with its layers in compression comp ("" keeps each as
// it is) and, when oci is set, OCI media types. It returns img itself when
// nothing changes. Recompressed layers are written to files under tmp.
func (o *options) convert(ctx context.Context, img v1.Image, comp Compression, oci bool, tmp string) (v1.Image, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if len(layers) != len(m.Layers) {
		return nil, fmt.Errorf("image has %d layers but its manifest lists %d", len(layers), len(m.Layers))
	}
	mt := m.MediaType
	if mt == "" {
		if mt, err = img.MediaType(); err != nil {
			return nil, err
		}
	}
	changed := false
	out := make([]v1.Layer, len(layers))
	for i, l := range layers {
		out[i] = l
		have := compressionOf(m.Layers[i].MediaType)
		if comp == "" || have == string(comp) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		o.logf("recompressing layer %s (%s) to %s", m.Layers[i].Digest, orNone(have), comp)
		if out[i], err = recompress(l, comp, tmp); err != nil {
			return nil, fmt.Errorf("recompressing layer %s: %w", m.Layers[i].Digest, err)
		}
		changed = true
	}
	// OCI types when asked, and whenever a layer is zstd: Docker's schema 2
	// has no zstd media type.
	if !oci && mt == types.DockerManifestSchema2 {
		for i := range out {
			if lmt, _ := out[i].MediaType(); lmt == types.OCILayerZStd {
				oci = true
			}
		}
	}
	toOCI := oci && mt == types.DockerManifestSchema2
	if !changed && !toOCI {
		return img, nil
	}
	nm := *m
	nm.Layers = make([]v1.Descriptor, len(out))
	if toOCI {
		nm.MediaType = types.OCIManifestSchema1
		nm.Config.MediaType = types.OCIConfigJSON
	}
	for i, l := range out {
		d := m.Layers[i]
		if l != layers[i] {
			if d.Digest, err = l.Digest(); err != nil {
				return nil, err
			}
			if d.Size, err = l.Size(); err != nil {
				return nil, err
			}
			d.Annotations = nil // annotations of the old blob (zstd:chunked, estargz) no longer hold
			d.URLs = nil
		}
		c := compressionOf(d.MediaType)
		if l != layers[i] {
			c = string(comp)
		}
		d.MediaType = layerType(c, l, nm.MediaType)
		nm.Layers[i] = d
		if lmt, _ := l.MediaType(); lmt != d.MediaType {
			out[i] = typedLayer{l, d.MediaType} // the layer says what the manifest says
		}
	}
	raw, err := json.Marshal(nm)
	if err != nil {
		return nil, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	return &image{rawManifest: raw, rawConfig: cfg, mediaType: nm.MediaType, layers: out}, nil
}

// layerType is the media type for a layer in compression comp under a
// manifest of type mt. Foreign layers keep their non-distributable type.
func layerType(comp string, l v1.Layer, mt types.MediaType) types.MediaType {
	cur, _ := l.MediaType()
	if mt == types.DockerManifestSchema2 {
		switch comp {
		case "":
			return types.DockerUncompressedLayer
		case string(Gzip):
			if cur == types.DockerForeignLayer {
				return cur
			}
			return types.DockerLayer
		}
		return cur
	}
	switch comp {
	case "":
		if cur == types.OCIUncompressedRestrictedLayer {
			return cur
		}
		return types.OCIUncompressedLayer
	case string(Gzip):
		if cur == types.DockerForeignLayer || cur == types.OCIRestrictedLayer {
			return types.OCIRestrictedLayer
		}
		return types.OCILayer
	case string(Zstd):
		return types.OCILayerZStd
	}
	return cur
}

func orNone(c string) string {
	if c == "" {
		return "uncompressed"
	}
	return c
}

// recompress writes l's tar compressed with comp to a file under tmp,
// hashing as it goes, and returns a layer over that file.
func recompress(l v1.Layer, comp Compression, tmp string) (v1.Layer, error) {
	diffID, err := l.DiffID()
	if err != nil {
		return nil, err
	}
	ur, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer ur.Close()
	f, err := os.CreateTemp(tmp, "layer-")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	var zw io.WriteCloser
	var mt types.MediaType
	switch comp {
	case Gzip:
		zw, mt = gzip.NewWriter(cw), types.OCILayer
	case Zstd:
		if zw, err = zstd.NewWriter(cw, zstd.WithEncoderConcurrency(1)); err != nil {
			return nil, err
		}
		mt = types.OCILayerZStd
	default:
		return nil, fmt.Errorf("compression %q: want gzip or zstd", comp)
	}
	if _, err := io.Copy(zw, ur); err != nil {
		zw.Close()
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return &fileLayer{
		path:      f.Name(),
		digest:    v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))},
		diffID:    diffID,
		size:      cw.n,
		mediaType: mt,
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

// fileLayer is a compressed layer blob in a local file whose digest and diff
// ID were computed as it was written.
type fileLayer struct {
	path           string
	digest, diffID v1.Hash
	size           int64
	mediaType      types.MediaType
}

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }

func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	r, closeDec, err := decompress(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{r, closerFunc(func() error { closeDec(); return f.Close() })}, nil
}

// typedLayer is a layer under another media type (same bytes).
type typedLayer struct {
	v1.Layer
	mt types.MediaType
}

func (l typedLayer) MediaType() (types.MediaType, error) { return l.mt, nil }

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// checkPush reaches ref's registry and asks for push access to its
// repository, as remote.Write does first, so that a registry that cannot
// be reached or refuses the credentials fails before any work.
func (o *options) checkPush(ctx context.Context, ref name.Reference) error {
	repo := ref.Context()
	auth, who, err := o.auth(ctx, repo)
	if err != nil {
		return fmt.Errorf("reading the credentials for %s: %w", repo, err)
	}
	_, err = transport.NewWithContext(ctx, repo.Registry, auth, o.httpTransport(), []string{repo.Scope(transport.PushScope)})
	return explain(err, repo.RegistryStr(), who)
}
