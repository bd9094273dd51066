package worker

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"
	copy "github.com/tonistiigi/fsutil/copy"
	fstypes "github.com/tonistiigi/fsutil/types"

	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/oci"
	"github.com/snapbuild/snapbuild/snapshot"
)

const (
	imageScheme = "docker-image://"
	localScheme = "local://"
)

// ContentKey returns, for a local:// source, the key given with
// WithContentKey, else a checksum of the files the op
// selects (see localKey); for an http(s):// source without http.checksum,
// the digest of what the URL serves now with the name, mode, owner and
// Last-Modified the file gets (it downloads the file, for Source to use,
// unless the server answers 304 Not Modified to the ETag of the last
// download); "" for an image pinned by digest or an http source pinned by
// checksum, whose op names its content. Other sources are refused as
// Source refuses them.
func (w *Worker) ContentKey(ctx context.Context, op *pb.SourceOp) (digest.Digest, error) {
	switch {
	case strings.HasPrefix(op.Identifier, imageScheme):
		if _, err := imageDigest(op.Identifier); err != nil {
			return "", err
		}
		return "", nil
	case strings.HasPrefix(op.Identifier, localScheme):
		l, filter, err := w.localOf(op)
		if err != nil {
			return "", err
		}
		if l.key != "" {
			return l.key, nil
		}
		return localKey(ctx, l.dir, filter, w.hashesFor(l.dir))
	case strings.HasPrefix(op.Identifier, httpScheme), strings.HasPrefix(op.Identifier, httpsScheme):
		return w.httpContentKey(ctx, op)
	}
	return "", unsupportedSource(op.Identifier)
}

// Source makes the filesystem a source op names:
//
//   - docker-image://REF@DIGEST: the image whose manifest blob DIGEST is in
//     the store (the digest the Dockerfile front end's resolver pinned).
//     Layers whose snapshot is missing are unpacked from their blobs; an
//     image whose manifest is not in the store is an error that says to
//     pull or load it first. Nothing is fetched from a registry.
//   - local://NAME: the directory registered with AddLocal under NAME,
//     read in place (nothing is copied when the source is made), narrowed
//     to what the op's include and exclude patterns select
//     (local.includepattern, local.excludepatterns: the .dockerignore
//     rules). A copy from it applies the patterns as it reads; a reader
//     that needs the selection as a directory (a bind mount, a cache
//     seed, a merge or diff) gets a copy of the selected entries, made
//     once, with owners, modes, xattrs and mtimes kept. Files edited
//     while the build runs are read as they are when the copy reads them.
//   - https://URL and http://URL: one file, downloaded (or the download
//     ContentKey made), committed as one layer. Its name is http.filename,
//     else the response's Content-Disposition filename, else the URL
//     path's last element, else "download"; its mode http.perm (default
//     0600, as Docker gives ADD URL files), its owner http.uid:http.gid,
//     its mtime the Last-Modified header (else 1970-01-01). With
//     http.checksum the content must have that digest (sha256, sha384 or
//     sha512). A status other than 2xx is an error naming the URL and the
//     status. http.authheadersecret names the secret whose value is the
//     Authorization header; without it the secrets HTTP_AUTH_HEADER_<host>
//     (the header) and HTTP_AUTH_TOKEN_<host> (a bearer token) are used
//     when the store has them, as in BuildKit.
//
// Other schemes (git://, oci-layout://) are refused.
func (w *Worker) Source(ctx context.Context, op *pb.SourceOp) (build.Ref, error) {
	switch {
	case strings.HasPrefix(op.Identifier, imageScheme):
		d, err := imageDigest(op.Identifier)
		if err != nil {
			return nil, err
		}
		return w.image(ctx, op.Identifier, d)
	case strings.HasPrefix(op.Identifier, localScheme):
		l, filter, err := w.localOf(op)
		if err != nil {
			return nil, err
		}
		lr, err := newLocalRef(l.dir, filter)
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", op.Identifier, err)
		}
		return &Ref{Dir: l.dir, local: lr}, nil
	case strings.HasPrefix(op.Identifier, httpScheme), strings.HasPrefix(op.Identifier, httpsScheme):
		return w.httpSourceRef(ctx, op)
	}
	return nil, unsupportedSource(op.Identifier)
}

func unsupportedSource(id string) error {
	scheme, _, _ := strings.Cut(id, "://")
	if scheme == "git" {
		return fmt.Errorf("source %q: git sources (ADD of a git repository) are not supported by this worker: clone the repository into the build context and COPY it", redactURL(id))
	}
	return fmt.Errorf("source %q: the %s:// scheme is not supported by this worker (only docker-image:// pinned by digest, local:// and http(s)://)", redactURL(id), scheme)
}

// imageDigest returns the digest an image source is pinned to.
func imageDigest(id string) (digest.Digest, error) {
	ref := strings.TrimPrefix(id, imageScheme)
	i := strings.LastIndex(ref, "@")
	if i < 0 {
		return "", fmt.Errorf("source %q: the image is not pinned by digest (REF@sha256:…): resolve it first, as the Dockerfile front end does", id)
	}
	d := digest.Digest(ref[i+1:])
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("source %q: %w", id, err)
	}
	return d, nil
}

// image returns the Ref of the image whose manifest is blob d, unpacking the
// layers that have no snapshot yet.
func (w *Worker) image(ctx context.Context, id string, d digest.Digest) (*Ref, error) {
	if !w.blobs.Has(d) {
		return nil, fmt.Errorf("image %s: manifest %s is not in the store: pull or load the image first", strings.TrimPrefix(id, imageScheme), d)
	}
	var probe struct {
		MediaType string            `json:"mediaType"`
		Manifests []json.RawMessage `json:"manifests"`
	}
	if err := w.blobs.ReadJSON(d, &probe); err != nil {
		return nil, fmt.Errorf("image %s: %w", strings.TrimPrefix(id, imageScheme), err)
	}
	if probe.Manifests != nil || probe.MediaType == ocispec.MediaTypeImageIndex {
		return nil, fmt.Errorf("image %s: %s is an index, not a manifest: pin the digest of the platform's manifest", strings.TrimPrefix(id, imageScheme), d)
	}
	var m ocispec.Manifest
	if err := w.blobs.ReadJSON(d, &m); err != nil {
		return nil, fmt.Errorf("image %s: %w", strings.TrimPrefix(id, imageScheme), err)
	}
	switch m.MediaType {
	case "", ocispec.MediaTypeImageManifest, dockerManifest:
	default:
		return nil, fmt.Errorf("image %s: blob %s is a %s, not an image manifest", strings.TrimPrefix(id, imageScheme), d, m.MediaType)
	}
	var cfg ocispec.Image
	if err := w.blobs.ReadJSON(m.Config.Digest, &cfg); err != nil {
		return nil, fmt.Errorf("image %s: config: %w", strings.TrimPrefix(id, imageScheme), err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("image %s: the manifest lists %d layers, the config %d diff_ids", strings.TrimPrefix(id, imageScheme), len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	r := &Ref{}
	for i, l := range m.Layers {
		diffID := cfg.RootFS.DiffIDs[i]
		parent := r.Chain
		r.Chain = snapshot.ChainID(parent, diffID)
		var err error
		l.MediaType, err = oci.LayerMediaType(l.MediaType)
		if err != nil {
			return nil, fmt.Errorf("image %s: layer %d (%s): %w", strings.TrimPrefix(id, imageScheme), i+1, l.Digest, err)
		}
		r.Layers = append(r.Layers, l)
		r.DiffIDs = append(r.DiffIDs, diffID)
		if err := w.unpack(ctx, parent, r.Chain, l, diffID); err != nil {
			return nil, fmt.Errorf("image %s: layer %d (%s): %w", strings.TrimPrefix(id, imageScheme), i+1, l.Digest, err)
		}
	}
	return r, nil
}

// dockerManifest is the media type of a Docker image manifest (schema 2),
// which has the OCI manifest's structure.
const dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"

// unpack makes snapshot chain on parent from the layer blob desc unless it
// exists (snapshot.Store.Apply: the diffID checked, whiteouts that hide
// nothing dropped). Concurrent calls for one chain unpack it once.
func (w *Worker) unpack(ctx context.Context, parent, chain digest.Digest, desc ocispec.Descriptor, diffID digest.Digest) error {
	mu := keyedLock(&sharedMu, unpackLocks, chain)
	mu.Lock()
	defer mu.Unlock()
	if w.snaps.Exists(chain) {
		return nil
	}
	rc, err := w.blobs.OpenLayer(desc)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = w.snaps.Apply(ctx, parent, chain, rc, diffID)
	return err
}

// localOf returns the directory and the filter of a local:// source.
func (w *Worker) localOf(op *pb.SourceOp) (local, *fsutil.FilterOpt, error) {
	name := strings.TrimPrefix(op.Identifier, localScheme)
	w.mu.Lock()
	l, ok := w.locals[name]
	var known []string
	for n := range w.locals {
		known = append(known, n)
	}
	w.mu.Unlock()
	if !ok {
		sort.Strings(known)
		return local{}, nil, fmt.Errorf("source %q: no local source %q is registered (registered: %q): add its directory with AddLocal", op.Identifier, name, known)
	}
	filter := &fsutil.FilterOpt{}
	for attr, dst := range map[string]*[]string{
		pb.AttrIncludePatterns: &filter.IncludePatterns,
		pb.AttrExcludePatterns: &filter.ExcludePatterns,
		pb.AttrFollowPaths:     &filter.FollowPaths,
	} {
		if v, ok := op.Attrs[attr]; ok && v != "" {
			if err := json.Unmarshal([]byte(v), dst); err != nil {
				return local{}, nil, fmt.Errorf("source %q: attribute %s: %w", op.Identifier, attr, err)
			}
		}
	}
	return l, filter, nil
}

// SelectionKey implements build.Selector for local:// sources: the
// checksum, as localKey makes it, of the files of the op's directory (after
// the op's patterns) that paths select, a path selecting what a copy of it
// copies: the entries its components match, with filepath.Match per
// component as a copy resolves wildcards, and everything under them. It
// returns "" (the whole source's key is used) for other sources, for a
// selection of the whole source ("."), for a path that is not a valid
// pattern, and when a symbolic link is a selection or on
// the way to one (see onTheWay), since a copy follows it to files the
// selection does not name.
func (w *Worker) SelectionKey(ctx context.Context, op *pb.SourceOp, paths []string) (digest.Digest, error) {
	if !strings.HasPrefix(op.Identifier, localScheme) {
		return "", nil
	}
	l, filter, err := w.localOf(op)
	if err != nil {
		return "", err
	}
	if l.key != "" {
		return "", nil // the caller's key stands for the whole source
	}
	sels := make([][]string, len(paths))
	for i, p := range paths {
		sels[i] = components(p)
		if len(sels[i]) == 0 {
			return "", nil // the whole source: its own key says as much
		}
		for _, c := range sels[i] {
			if _, err := filepath.Match(c, ""); err != nil {
				return "", nil
			}
		}
	}
	prefix, err := json.Marshal(struct {
		Selection []string `json:"selection"`
	}{paths})
	if err != nil {
		return "", err
	}
	k, err := localChecksum(ctx, l.dir, filter, w.hashesFor(l.dir), prefix, func(p string, fi fs.FileInfo) (bool, error) {
		pc := components(p)
		selected, leads := false, false
		for _, sc := range sels {
			if fi.Mode()&fs.ModeSymlink != 0 && onTheWay(pc, sc) {
				return false, errSymlinkOnTheWay
			}
			selected = selected || matchesPrefix(pc, sc)
			leads = leads || len(pc) < len(sc) && onTheWay(pc, sc)
		}
		if fi.IsDir() && !selected && !leads {
			return false, filepath.SkipDir // nothing below it is selected
		}
		return selected, nil
	})
	if errors.Is(err, errSymlinkOnTheWay) {
		return "", nil
	}
	return k, err
}

var errSymlinkOnTheWay = errors.New("a symbolic link on the way to a selection")

// components splits a slash-separated path relative to a source's root
// into its cleaned components; the root itself has none.
func components(p string) []string {
	p = strings.Trim(path.Clean("/"+filepath.ToSlash(p)), "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// matchesPrefix reports whether the entry p is selected by sel: p's first
// len(sel) components match sel's, component by component.
func matchesPrefix(p, sel []string) bool {
	if len(p) < len(sel) {
		return false
	}
	for i, c := range sel {
		if ok, _ := filepath.Match(c, p[i]); !ok {
			return false
		}
	}
	return true
}

// onTheWay reports whether a symbolic link at p can change what sel
// selects: p is, or may be (a wildcard component), sel or a directory on
// the way to it, which a copy follows. Links below a selection are copied
// as links, and their targets are in the checksum.
func onTheWay(p, sel []string) bool {
	if len(p) > len(sel) {
		return false
	}
	for i, c := range p {
		if ok, _ := filepath.Match(sel[i], c); !ok {
			return false
		}
	}
	return true
}

// copyLocal copies what filter selects of src into dst with BuildKit's copy
// code: owners, modes, xattrs (see xattrError) and mtimes as they are,
// symlinks as symlinks.
func copyLocal(ctx context.Context, src, dst string, filter *fsutil.FilterOpt) error {
	return copy.Copy(ctx, src, "/", dst, "/", func(ci *copy.CopyInfo) {
		ci.CopyDirContents = true
		ci.IncludePatterns = filter.IncludePatterns
		ci.ExcludePatterns = filter.ExcludePatterns
		ci.XAttrErrorHandler = xattrError
	})
}

// localKey is the checksum of the files of dir that filter selects: for each,
// in walk order, its path, type and permission bits, owner, symlink target,
// device numbers, xattrs and, for regular files, the sha256 of the content.
// Modification times are not part of it (as in BuildKit's content checksums):
// touching a file does not change the key. A file's content is read only
// when hashes (nil: always) has no digest for its current stat (see
// fileHashes), so a walk over unchanged files is stats only.
func localKey(ctx context.Context, dir string, filter *fsutil.FilterOpt, hashes *fileHashes) (digest.Digest, error) {
	return localChecksum(ctx, dir, filter, hashes, nil, nil)
}

// localChecksum is localKey over the entries keep accepts (all when keep is
// nil), with prefix written first. keep may end the walk with an error, or
// skip a directory's entries with filepath.SkipDir.
func localChecksum(ctx context.Context, dir string, filter *fsutil.FilterOpt, hashes *fileHashes, prefix []byte, keep func(p string, fi fs.FileInfo) (bool, error)) (digest.Digest, error) {
	h := sha256.New()
	h.Write(prefix)
	err := fsutil.Walk(ctx, dir, filter, func(p string, fi fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if keep != nil {
			if ok, err := keep(filepath.ToSlash(p), fi); err != nil || !ok {
				return err
			}
		}
		st, ok := fi.Sys().(*fstypes.Stat)
		if !ok {
			return fmt.Errorf("%s: no file stat", p)
		}
		keys := make([]string, 0, len(st.Xattrs))
		for k := range st.Xattrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(h, "%q %o %d %d %q %d %d", p, st.Mode, st.Uid, st.Gid, st.Linkname, st.Devmajor, st.Devminor)
		for _, k := range keys {
			fmt.Fprintf(h, " %q=%x", k, st.Xattrs[k])
		}
		if fi.Mode().IsRegular() {
			d, err := hashes.digest(filepath.Join(dir, p), filepath.ToSlash(p))
			if err != nil {
				return err
			}
			fmt.Fprintf(h, " %s", d.Encoded())
		}
		h.Write([]byte{'\n'})
		return nil
	})
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return "", err
		}
		return "", fmt.Errorf("checksum of local source %s: %w", dir, err)
	}
	return digest.NewDigest(digest.SHA256, h), nil
}
