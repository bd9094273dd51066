package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Pull opens the image ref names, for the platform of WithPlatform
// (linux/amd64 by default) when ref names a multi-platform index.
//
// Registry images (Docker) are looked up through the registries
// configuration: mirrors in order, then the location; the first that serves
// the manifest is used, and when all fail the error is a *PullError listing
// each. OCI layouts and archives are read in place; an OCI reference without a
// tag needs a layout with exactly one image (or one index).
//
// The manifest and config are read and verified before Pull returns (Docker
// and OCI media types; Docker schema 1 is refused). Layers are read when the
// caller streams them: Compressed gives the blob as stored (gzip, zstd or
// uncompressed tar) and Uncompressed the tar; either fails its last Read
// with a *DigestError (errors.Is ErrDigestMismatch) naming the blob when the
// content does not match its digest, size or diff ID. Read a layer to its
// end before trusting it.
//
// A registry image reads its layers under ctx: cancelling ctx stops them too.
//
// Errors name ref and match ErrNotFound, ErrUnauthorized, ErrUntrusted,
// ErrBlocked, ErrPlatform or ErrDigestMismatch where they apply; credentials
// never appear in them.
func Pull(ctx context.Context, ref Reference, opts ...Option) (v1.Image, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	var img v1.Image
	switch ref.Transport {
	case Docker:
		img, err = o.pullRemote(ctx, ref.Name)
	case OCI:
		var idx v1.ImageIndex
		if idx, err = layout.ImageIndexFromPath(ref.Path); err == nil {
			img, err = o.fromIndex(idx, ref.Tag, ref.String())
		}
	case OCIArchive:
		var idx v1.ImageIndex
		if idx, err = openOCIArchive(ref.Path); err == nil {
			img, err = o.fromIndex(idx, ref.Tag, ref.String())
		}
	case DockerArchive:
		img, err = o.fromDockerArchive(ref)
	default:
		err = fmt.Errorf("unknown transport %q", ref.Transport)
	}
	if err != nil {
		return nil, redact(fmt.Errorf("pulling %s: %w", ref, err), o.password)
	}
	return img, nil
}

// remoteOptions are the go-containerregistry options for one registry
// operation, and a description of the credentials for errors.
func (o *options) remoteOptions(ctx context.Context, repo name.Repository) ([]remote.Option, string) {
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(o.httpTransport()),
		remote.WithUserAgent("snapbuild"),
	}
	auth, who, err := o.auth(ctx, repo)
	if err != nil {
		// The keychain reports its error when the request asks it.
		return append(ropts, remote.WithAuthFromKeychain(o.keychain)), who
	}
	return append(ropts, remote.WithAuth(auth)), who
}

// auth is the authenticator for repo, the given credentials or what the
// keychain holds for it (anonymous when nothing), and a description of them
// for errors; err is the keychain's error reading its files.
func (o *options) auth(ctx context.Context, repo name.Repository) (auth authn.Authenticator, who string, err error) {
	if o.explicit {
		return authn.FromConfig(authn.AuthConfig{Username: o.username, Password: o.password}),
			fmt.Sprintf("the given credentials of user %q", o.username), nil
	}
	who = "no credentials (none found in the auth files or docker config)"
	a, err := authn.Resolve(ctx, o.keychain, repo)
	if err != nil {
		return nil, who, err
	}
	if a != authn.Anonymous {
		who = "credentials from the keychain"
		if c, err := a.Authorization(); err == nil && c.Username != "" {
			who = fmt.Sprintf("credentials of user %q from the keychain", c.Username)
		}
	}
	return a, who, nil
}

func (o *options) pullRemote(ctx context.Context, ref name.Reference) (v1.Image, error) {
	eps, err := o.config.pullEndpoints(ref, o.isInsecure)
	if err != nil {
		return nil, err
	}
	var failed []CandidateError
	for _, ep := range eps {
		img, err := o.pullEndpoint(ctx, ep.ref)
		if err == nil {
			if ep.mirror || fullName(ep.ref) != fullName(ref) {
				o.logf("pulled %s from %s", fullName(ref), fullName(ep.ref))
			}
			return img, nil
		}
		err = redact(err, o.password)
		if len(eps) == 1 {
			return nil, err
		}
		o.logf("pulling %s from %s failed: %v", fullName(ref), fullName(ep.ref), err)
		failed = append(failed, CandidateError{Ref: fullName(ep.ref), Mirror: ep.mirror, Err: err})
		if ctx.Err() != nil {
			break
		}
	}
	return nil, &PullError{Candidates: failed}
}

func (o *options) pullEndpoint(ctx context.Context, ref name.Reference) (v1.Image, error) {
	host := ref.Context().RegistryStr()
	ropts, who := o.remoteOptions(ctx, ref.Context())
	desc, err := remote.Get(ref, ropts...)
	if err != nil {
		return nil, explain(err, host, who)
	}
	src := "docker://" + fullName(ref)
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, explain(err, host, who)
		}
		img, err := o.selectPlatform(idx, src)
		return img, explain(err, host, who)
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return nil, explain(err, host, who)
		}
		vi, err := verifyImage(img, &desc.Digest, src)
		if err != nil {
			return nil, explain(err, host, who)
		}
		return vi, o.checkPlatform(vi)
	case desc.MediaType == types.DockerManifestSchema1 || desc.MediaType == types.DockerManifestSchema1Signed:
		return nil, fmt.Errorf("%s is a Docker schema 1 manifest, which is not supported", src)
	}
	return nil, fmt.Errorf("%s has media type %q, not an image or an index", src, desc.MediaType)
}

// fromIndex picks the image a layout's index.json names by tag (its
// org.opencontainers.image.ref.name) and platform.
func (o *options) fromIndex(idx v1.ImageIndex, tag, src string) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	picked, tags := tagged(im, tag)
	switch {
	case len(picked) == 0 && tag != "":
		return nil, fmt.Errorf("%w: no image tagged %q (tags: %s)", ErrNotFound, tag, listOrNone(tags))
	case len(picked) == 0:
		return nil, fmt.Errorf("%w: the layout's index.json lists no image", ErrNotFound)
	case len(picked) > 1 && tag == "":
		return nil, fmt.Errorf("the layout holds %d images: name one by tag (tags: %s)", len(picked), listOrNone(tags))
	case len(picked) > 1:
		// Several entries under one tag: one per platform.
		return o.pick(idx, picked, src)
	}
	return o.open(idx, picked[0], src)
}

// tagged returns the entries of a layout's index named tag by their
// org.opencontainers.image.ref.name (every entry when tag is ""), in
// index order, and every tag the index names.
func tagged(im *v1.IndexManifest, tag string) (picked []v1.Descriptor, tags []string) {
	for _, d := range im.Manifests {
		t := d.Annotations[AnnotationRefName]
		if t != "" {
			tags = append(tags, t)
		}
		if tag == "" || t == tag {
			picked = append(picked, d)
		}
	}
	return picked, tags
}

// open opens the image or index d of idx, choosing a platform in an index.
func (o *options) open(idx v1.ImageIndex, d v1.Descriptor, src string) (v1.Image, error) {
	switch {
	case d.MediaType.IsIndex():
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, err
		}
		if err := verifyIndex(child, d.Digest, src); err != nil {
			return nil, err
		}
		return o.selectPlatform(child, src)
	case d.MediaType.IsImage():
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, err
		}
		vi, err := verifyImage(img, &d.Digest, src)
		if err != nil {
			return nil, err
		}
		return vi, o.checkPlatform(vi)
	}
	return nil, fmt.Errorf("%s: manifest %s has media type %q, not an image or an index", src, d.Digest, d.MediaType)
}

func verifyIndex(idx v1.ImageIndex, want v1.Hash, src string) error {
	raw, err := idx.RawManifest()
	if err != nil {
		return err
	}
	if got := sha256Hash(raw); got != want {
		return &DigestError{Kind: "index", Digest: want.String(), Got: got.String(), Size: int64(len(raw)), WantSize: -1, Source: src}
	}
	return nil
}

// selectPlatform opens the image of idx for o.platform.
func (o *options) selectPlatform(idx v1.ImageIndex, src string) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	return o.pick(idx, im.Manifests, src)
}

// pick opens the entry of ds for o.platform: an exact variant match first,
// then any variant when o.platform has none.
func (o *options) pick(idx v1.ImageIndex, ds []v1.Descriptor, src string) (v1.Image, error) {
	want := o.platform
	var have []string
	var best *v1.Descriptor
	for i, d := range ds {
		p := d.Platform
		if p == nil || p.OS == "unknown" { // attestation manifests
			continue
		}
		have = append(have, p.String())
		if p.OS != want.OS || p.Architecture != want.Architecture {
			continue
		}
		if p.Variant == want.Variant {
			best = &ds[i]
			break
		}
		if want.Variant == "" && best == nil {
			best = &ds[i]
		}
	}
	if best == nil && len(have) == 0 && len(ds) == 1 {
		// An index that names no platform: take its only entry, whose
		// config is then checked.
		return o.open(idx, ds[0], src)
	}
	if best == nil {
		slices.Sort(have)
		return nil, fmt.Errorf("%w %s in %s: the index has %s", ErrPlatform, want.String(), src, listOrNone(slices.Compact(have)))
	}
	return o.open(idx, *best, src)
}

// checkPlatform refuses a single-platform image built for another platform.
// An image whose config leaves os or architecture empty is accepted.
func (o *options) checkPlatform(img v1.Image) error {
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	if cf.OS == "" || cf.Architecture == "" {
		return nil
	}
	if cf.OS != o.platform.OS || cf.Architecture != o.platform.Architecture ||
		(o.platform.Variant != "" && cf.Variant != "" && cf.Variant != o.platform.Variant) {
		got := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
		return fmt.Errorf("%w %s: the image is for %s", ErrPlatform, o.platform.String(), got.String())
	}
	return nil
}

func (o *options) fromDockerArchive(ref Reference) (v1.Image, error) {
	var tag *name.Tag
	if ref.Name != nil {
		t, ok := ref.Name.(name.Tag)
		if !ok {
			return nil, fmt.Errorf("docker-archive reference %s is not a tag", ref.Name)
		}
		tag = &t
	}
	img, err := tarball.ImageFromPath(ref.Path, tag)
	if err != nil {
		if tag != nil && strings.Contains(err.Error(), "not found in tarball") {
			return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return nil, err
	}
	// The manifest of a docker-archive is computed, not stored: there is
	// nothing to check it against, but the config and diff IDs are checked.
	vi, err := verifyImage(img, nil, ref.String())
	if err != nil {
		return nil, err
	}
	return vi, o.checkPlatform(vi)
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
