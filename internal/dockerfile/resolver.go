package dockerfile

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// MetaResolver tells Convert which image a reference names and what its
// config is. It is how the Dockerfile front end reaches snapbuild's store and
// registries; the converter asks it once per base image the target needs
// (FROM, COPY --from=<image>, RUN --mount=from=<image>), never for a stage the
// target does not use, and never for "scratch".
//
// Implementations MUST be safe for concurrent use: BuildKit resolves the base
// images of all needed stages in parallel.
type MetaResolver interface {
	// ResolveImageConfig returns the digest of the image that ref names for
	// platform, and that image's config: the JSON of an OCI (or Docker) image
	// config, as stored in the registry.
	//
	// ref is normalized as BuildKit normalizes FROM: a fully qualified name
	// with a tag ("docker.io/library/debian:bookworm") or a digest
	// ("docker.io/library/debian@sha256:…"). When ref carries a digest the
	// returned digest must equal it.
	//
	// The digest is what the converted source op is pinned to, so it must
	// identify the image the store will later provide: the manifest digest
	// for a single-platform image, or the digest of the platform's manifest
	// in an index. The config must list its layers in rootfs.diff_ids: a
	// config with no diff_ids (and no history entry with a layer) is taken
	// for an empty image, and the stage is converted as FROM scratch.
	//
	// An error should say what to do (pull the image, check the name, log
	// in); Convert wraps it with the Dockerfile line of the instruction that
	// needed the image.
	ResolveImageConfig(ctx context.Context, ref string, platform ocispec.Platform) (digest.Digest, []byte, error)
}

// MetaResolverFunc adapts a function to a MetaResolver.
type MetaResolverFunc func(ctx context.Context, ref string, platform ocispec.Platform) (digest.Digest, []byte, error)

// ResolveImageConfig calls f(ctx, ref, platform).
func (f MetaResolverFunc) ResolveImageConfig(ctx context.Context, ref string, platform ocispec.Platform) (digest.Digest, []byte, error) {
	return f(ctx, ref, platform)
}

// recordingResolver adapts a MetaResolver to BuildKit's ImageMetaResolver,
// checks what it returns, and records every image resolved.
type recordingResolver struct {
	r        MetaResolver
	platform ocispec.Platform // the target's: used when BuildKit names none
	build    ocispec.Platform // the host's: BUILDPLATFORM

	mu       sync.Mutex
	resolved map[string]digest.Digest
}

var _ sourceresolver.ImageMetaResolver = (*recordingResolver)(nil)

func newRecordingResolver(r MetaResolver, target, build ocispec.Platform) *recordingResolver {
	return &recordingResolver{r: r, platform: target, build: build, resolved: map[string]digest.Digest{}}
}

// ResolveImageConfig implements sourceresolver.ImageMetaResolver. It returns
// ref unchanged: snapbuild's resolvers do not rename images. An image for
// a platform other than the target's or the build's (a FROM --platform
// naming another) is refused before the MetaResolver is asked: its steps
// could not run, and a pull for it is wasted.
func (rr *recordingResolver) ResolveImageConfig(ctx context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	platform := rr.platform
	if opt.ImageOpt != nil && opt.ImageOpt.Platform != nil {
		platform = *opt.ImageOpt.Platform
	}
	if !samePlatform(platform, rr.platform) && !samePlatform(platform, rr.build) {
		// rr.build is the host's: CheckHostPlatform says why.
		return "", "", nil, fmt.Errorf("image %s for %s (FROM --platform): %w; remove --platform, or write --platform=$BUILDPLATFORM",
			ref, formatPlatform(platforms.Normalize(platform)), CheckHostPlatform(platform))
	}
	dgst, config, err := rr.r.ResolveImageConfig(ctx, ref, platform)
	if err != nil {
		return "", "", nil, fmt.Errorf("resolving image %s for %s: %w", ref, formatPlatform(platform), err)
	}
	if err := dgst.Validate(); err != nil {
		return "", "", nil, fmt.Errorf("resolving image %s: the resolver returned digest %q: %w; it must return the image's manifest digest (sha256:<64 hex digits>)", ref, dgst, err)
	}
	if named, err := reference.ParseNormalizedNamed(ref); err == nil {
		if c, ok := named.(reference.Canonical); ok && c.Digest() != dgst {
			return "", "", nil, fmt.Errorf("resolving image %s: the resolver returned digest %s for a reference pinned to %s; it must return the pinned image", ref, dgst, c.Digest())
		}
	}
	if !json.Valid(config) {
		return "", "", nil, fmt.Errorf("resolving image %s (%s): the resolver returned a config that is not JSON; it must return the image's config blob", ref, dgst)
	}

	rr.mu.Lock()
	defer rr.mu.Unlock()
	if prev, ok := rr.resolved[ref]; ok && prev != dgst {
		return "", "", nil, fmt.Errorf("resolving image %s: resolved to %s and then to %s within one conversion; pin the image by digest or retry once the tag stops moving", ref, prev, dgst)
	}
	rr.resolved[ref] = dgst
	return ref, dgst, config, nil
}

// images returns a copy of what has been resolved so far.
func (rr *recordingResolver) images() map[string]digest.Digest {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return maps.Clone(rr.resolved)
}

// formatPlatform writes os/arch[/variant], as docker --platform takes it.
func formatPlatform(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// samePlatform reports whether a and b, normalized, are the same OS,
// architecture and variant.
func samePlatform(a, b ocispec.Platform) bool {
	a, b = platforms.Normalize(a), platforms.Normalize(b)
	return a.OS == b.OS && a.Architecture == b.Architecture && a.Variant == b.Variant
}
