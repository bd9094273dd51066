package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/snapbuild/snapbuild/oci"
	"github.com/snapbuild/snapbuild/snapshot"
)

// Images in and out of the store as go-containerregistry sees them: a
// pulled v1.Image imported (Import), a stored manifest as a v1.Image for an
// export or a push (V1Image), and the image IDs records carry (ImageID).

// ImportOptions are what Import reports while it runs.
type ImportOptions struct {
	// Progress gets one line per layer fetched or unpacked; nil for none.
	Progress func(line string)
	// Warn gets warnings: the device nodes of a layer that a rootless
	// store could not create; nil for none.
	Warn func(line string)
}

// Import stores img, a pulled image: its layer blobs and config as they are
// (digests and diffIDs unchanged, so a push later shares them with the
// registry), a manifest with OCI media types, an overlay snapshot per layer
// (unpacked by snapshot.Store.Apply, each layer's diffID checked against the
// config), and an image record, which it returns. Layers whose snapshot
// exists are not unpacked again. The image must be linux/amd64. Errors name
// the layer (its number and digest).
func (s *Store) Import(ctx context.Context, img v1.Image, o ImportOptions) (Image, error) {
	progress, warn := o.Progress, o.Warn
	if progress == nil {
		progress = func(string) {}
	}
	if warn == nil {
		warn = func(string) {}
	}
	m, err := img.Manifest()
	if err != nil {
		return Image{}, err
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return Image{}, err
	}
	var cfg dockerspec.DockerOCIImage
	if err := json.Unmarshal(rawCfg, &cfg); err != nil {
		return Image{}, fmt.Errorf("image config: %w", err)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" {
		return Image{}, fmt.Errorf("the image is for %s/%s: snapbuild builds linux/amd64 images (Modal's rule)", cfg.OS, cfg.Architecture)
	}
	layers, err := img.Layers()
	if err != nil {
		return Image{}, err
	}
	if len(layers) != len(cfg.RootFS.DiffIDs) {
		return Image{}, fmt.Errorf("the manifest lists %d layers, the config %d diffIDs", len(layers), len(cfg.RootFS.DiffIDs))
	}
	cfgDesc, err := s.Blobs().WriteBlobFrom(ocispec.MediaTypeImageConfig, bytes.NewReader(rawCfg), digest.Digest(m.Config.Digest.String()), m.Config.Size)
	if err != nil {
		return Image{}, fmt.Errorf("image config: %w", err)
	}
	var descs []ocispec.Descriptor
	var chain digest.Digest
	for i, l := range layers {
		if err := ctx.Err(); err != nil {
			return Image{}, err
		}
		mt, err := l.MediaType()
		if err != nil {
			return Image{}, err
		}
		ociType, err := oci.LayerMediaType(string(mt))
		if err != nil {
			return Image{}, fmt.Errorf("layer %d: %w", i+1, err)
		}
		d, err := l.Digest()
		if err != nil {
			return Image{}, err
		}
		size, err := l.Size()
		if err != nil {
			return Image{}, err
		}
		desc := ocispec.Descriptor{MediaType: ociType, Digest: digest.Digest(d.String()), Size: size}
		if !s.Blobs().Has(desc.Digest) {
			progress(fmt.Sprintf("layer %d/%d: fetching %s (%.1f MB)", i+1, len(layers), desc.Digest, float64(size)/1e6))
			rc, err := l.Compressed()
			if err != nil {
				return Image{}, fmt.Errorf("layer %s: %w", desc.Digest, err)
			}
			desc, err = s.Blobs().WriteBlobFrom(ociType, rc, desc.Digest, size)
			rc.Close()
			if err != nil {
				return Image{}, fmt.Errorf("layer %d: %w", i+1, err)
			}
		}
		descs = append(descs, desc)
		diffID := cfg.RootFS.DiffIDs[i]
		parent := chain
		chain = snapshot.ChainID(parent, diffID)
		if s.Snapshots().Exists(chain) {
			continue
		}
		progress(fmt.Sprintf("layer %d/%d: unpacking %s", i+1, len(layers), desc.Digest))
		skipped, err := s.unpackLayer(ctx, parent, chain, desc, diffID)
		if err != nil {
			return Image{}, fmt.Errorf("layer %d (%s): %w", i+1, desc.Digest, err)
		}
		if len(skipped) > 0 {
			warn(skippedDevicesWarning(i+1, len(layers), desc.Digest, skipped))
		}
	}
	manifest, err := s.Blobs().WriteJSON(ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cfgDesc,
		Layers:    descs,
	})
	if err != nil {
		return Image{}, err
	}
	rec := Image{ID: ImageID([]byte("pulled " + manifest.Digest.String())), Manifest: manifest, ChainID: chain,
		Shell: cfg.Config.Shell, Health: cfg.Config.Healthcheck}
	return rec, s.PutImage(rec)
}

// unpackLayer makes snapshot chain on parent from the stored layer blob
// desc, checking that its uncompressed content has diffID. It returns the
// layer's device nodes that were not created (rootless: no mknod).
func (s *Store) unpackLayer(ctx context.Context, parent, chain digest.Digest, desc ocispec.Descriptor, diffID digest.Digest) (skipped []string, err error) {
	r, err := s.blobs.OpenLayer(desc)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return s.snaps.Apply(ctx, parent, chain, r, diffID)
}

// V1Image is the stored image with manifest m, as a go-containerregistry
// v1.Image whose layers are the store's blobs as they are (compressed).
func (s *Store) V1Image(m ocispec.Descriptor) (v1.Image, error) {
	raw, err := s.blobs.ReadBlob(m.Digest)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&storeImageCore{blobs: s.blobs, raw: raw, mediaType: types.MediaType(m.MediaType)})
}

// skippedDevicesWarning says which device nodes of a pulled layer a
// rootless build could not create in its snapshot, naming the first ten.
func skippedDevicesWarning(n, of int, d digest.Digest, names []string) string {
	list := names
	if len(list) > 10 {
		list = list[:10]
	}
	more := ""
	if len(names) > len(list) {
		more = fmt.Sprintf(" and %d more", len(names)-len(list))
	}
	return fmt.Sprintf("layer %d/%d (%s) holds %d device node(s) that a rootless build cannot create: %s%s. Build steps on this base do not see them (the sandbox provides /dev itself); the pulled layer, and so an export, keeps them. Build as root for steps to see them",
		n, of, d, len(names), strings.Join(list, ", "), more)
}

// ImageID derives a Modal-style image ID, "im-" + 22 base62 characters, from a
// layer definition.
func ImageID(def []byte) string {
	sum := sha256.Sum256(def)
	s := new(big.Int).SetBytes(sum[:]).Text(62)
	for len(s) < 22 {
		s = "0" + s
	}
	return "im-" + s[:22]
}

// storeImageCore is partial.CompressedImageCore over the blob store.
type storeImageCore struct {
	blobs     *oci.Store
	raw       []byte
	mediaType types.MediaType
}

func (c *storeImageCore) RawManifest() ([]byte, error) { return c.raw, nil }

func (c *storeImageCore) MediaType() (types.MediaType, error) { return c.mediaType, nil }

func (c *storeImageCore) RawConfigFile() ([]byte, error) {
	m, err := v1.ParseManifest(bytes.NewReader(c.raw))
	if err != nil {
		return nil, err
	}
	return c.blobs.ReadBlob(digest.Digest(m.Config.Digest.String()))
}

func (c *storeImageCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	m, err := v1.ParseManifest(bytes.NewReader(c.raw))
	if err != nil {
		return nil, err
	}
	for _, l := range m.Layers {
		if l.Digest == h {
			return &storeLayer{blobs: c.blobs, desc: l}, nil
		}
	}
	if m.Config.Digest == h {
		return &storeLayer{blobs: c.blobs, desc: m.Config}, nil
	}
	return nil, fmt.Errorf("blob %s is not part of manifest", h)
}

// storeLayer is a compressed layer blob in the store.
type storeLayer struct {
	blobs *oci.Store
	desc  v1.Descriptor
}

func (l *storeLayer) Digest() (v1.Hash, error) { return l.desc.Digest, nil }

func (l *storeLayer) Size() (int64, error) { return l.desc.Size, nil }

func (l *storeLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }

func (l *storeLayer) Compressed() (io.ReadCloser, error) {
	return l.blobs.Open(digest.Digest(l.desc.Digest.String()))
}
