package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Artifact is an OCI artifact (an image manifest whose config is not an
// image config, such as a build cache) opened by OpenArtifact: its manifest
// and config are read and verified; its other blobs are read on demand.
type Artifact struct {
	// Manifest is the parsed manifest; RawManifest its bytes, whose
	// sha256 is the artifact's digest.
	Manifest    *v1.Manifest
	RawManifest []byte
	// Config is the config blob, verified against the manifest's
	// descriptor.
	Config []byte

	img    v1.Image
	source string
	o      *options
	ref    name.Reference // the registry reference as reached (Docker), else nil
}

// OpenArtifact opens the artifact ref names: docker://REF (the registry's
// manifest for REF, with the credentials and insecure settings of opts; no
// mirrors, since an artifact is not an image a mirror serves) or
// oci:DIR[:TAG] (the layout's manifest tagged TAG, or its only one). It
// reads the manifest and config and checks the config against its digest
// and size; layers are read with Blob. Errors name ref and match ErrNotFound,
// ErrUnauthorized or ErrDigestMismatch where they apply.
func OpenArtifact(ctx context.Context, ref Reference, opts ...Option) (*Artifact, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	a, err := o.openArtifact(ctx, ref)
	if err != nil {
		return nil, redact(fmt.Errorf("reading %s: %w", ref, err), o.password)
	}
	return a, nil
}

func (o *options) openArtifact(ctx context.Context, ref Reference) (*Artifact, error) {
	var img v1.Image
	var reached name.Reference
	switch ref.Transport {
	case Docker:
		r := ref.Name
		host := r.Context().RegistryStr()
		if o.isInsecure(host) {
			var err error
			if r, err = name.ParseReference(fullName(r), name.Insecure); err != nil {
				return nil, err
			}
		}
		ropts, who := o.remoteOptions(ctx, r.Context())
		i, err := remote.Image(r, ropts...)
		if err != nil {
			return nil, explain(err, host, who)
		}
		img, reached = i, r
	case OCI:
		p, err := layout.FromPath(ref.Path)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotFound, err)
		}
		idx, err := p.ImageIndex()
		if err != nil {
			return nil, err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, err
		}
		picked, _ := tagged(im, ref.Tag)
		switch {
		case len(picked) == 0:
			return nil, fmt.Errorf("%w: no manifest tagged %q in the layout", ErrNotFound, ref.Tag)
		case len(picked) > 1:
			return nil, fmt.Errorf("the layout holds %d manifests: name one by tag (oci:DIR:TAG)", len(picked))
		}
		if img, err = idx.Image(picked[0].Digest); err != nil {
			return nil, err
		}
		raw, err := img.RawManifest()
		if err != nil {
			return nil, err
		}
		if got := sha256Hash(raw); got != picked[0].Digest {
			return nil, &DigestError{Kind: "manifest", Digest: picked[0].Digest.String(), Got: got.String(), Size: int64(len(raw)), WantSize: -1, Source: ref.String()}
		}
	default:
		return nil, fmt.Errorf("an artifact is read from docker://REF or oci:DIR[:TAG], not %s:", ref.Transport)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing manifest: %w", err)
	}
	cfg, err := readConfig(img, m.Config, ref.String())
	if err != nil {
		return nil, err
	}
	return &Artifact{Manifest: m, RawManifest: raw, Config: cfg, img: img, source: ref.String(), o: o, ref: reached}, nil
}

// Blob opens the blob d of the artifact (a layer its manifest lists),
// read from a registry under ctx. The final Read returns a *DigestError
// (errors.Is ErrDigestMismatch) instead of io.EOF when the content does
// not match d's digest or size.
func (a *Artifact) Blob(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	var l v1.Layer
	var err error
	if a.ref != nil {
		// The blob under ctx, not under the context Open was given.
		ropts, who := a.o.remoteOptions(ctx, a.ref.Context())
		l, err = remote.Layer(a.ref.Context().Digest(d.Digest.String()), ropts...)
		err = explain(err, a.ref.Context().RegistryStr(), who)
	} else {
		l, err = a.img.LayerByDigest(d.Digest)
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s from %s: %w", d.Digest, a.source, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, fmt.Errorf("blob %s from %s: %w", d.Digest, a.source, err)
	}
	size := d.Size
	if size <= 0 {
		size = -1
	}
	return &verifyReader{rc: rc, h: sha256.New(), want: d.Digest, size: size, kind: "blob", source: a.source}, nil
}
