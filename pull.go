package snapbuild

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/internal/store"
	"github.com/snapbuild/snapbuild/oci"
	"github.com/snapbuild/snapbuild/snapshot"
)

// importImage stores img, a pulled image, in the store: its layer blobs and
// config as they are (digests and diffIDs unchanged, so a push later
// shares them with the registry), a manifest with OCI media types, an
// overlay snapshot per layer (unpacked with overlay.Apply, each layer's
// diffID checked against the config), and an image record. Layers whose
// snapshot exists are not unpacked again. progress gets one line per layer.
func (b *Builder) importImage(ctx context.Context, img v1.Image, progress func(string)) (store.Image, error) {
	m, err := img.Manifest()
	if err != nil {
		return store.Image{}, err
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return store.Image{}, err
	}
	var cfg dockerspec.DockerOCIImage
	if err := json.Unmarshal(rawCfg, &cfg); err != nil {
		return store.Image{}, fmt.Errorf("image config: %w", err)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" {
		return store.Image{}, fmt.Errorf("the image is for %s/%s: snapbuild builds linux/amd64 images (Modal's rule)", cfg.OS, cfg.Architecture)
	}
	layers, err := img.Layers()
	if err != nil {
		return store.Image{}, err
	}
	if len(layers) != len(cfg.RootFS.DiffIDs) {
		return store.Image{}, fmt.Errorf("the manifest lists %d layers, the config %d diffIDs", len(layers), len(cfg.RootFS.DiffIDs))
	}
	cfgDesc, err := b.store.Blobs().WriteBlobFrom(ocispec.MediaTypeImageConfig, bytes.NewReader(rawCfg), digest.Digest(m.Config.Digest.String()), m.Config.Size)
	if err != nil {
		return store.Image{}, fmt.Errorf("image config: %w", err)
	}
	var descs []ocispec.Descriptor
	var chain digest.Digest
	for i, l := range layers {
		if err := ctx.Err(); err != nil {
			return store.Image{}, err
		}
		mt, err := l.MediaType()
		if err != nil {
			return store.Image{}, err
		}
		ociType, err := oci.LayerMediaType(string(mt))
		if err != nil {
			return store.Image{}, fmt.Errorf("layer %d: %w", i+1, err)
		}
		d, err := l.Digest()
		if err != nil {
			return store.Image{}, err
		}
		size, err := l.Size()
		if err != nil {
			return store.Image{}, err
		}
		desc := ocispec.Descriptor{MediaType: ociType, Digest: digest.Digest(d.String()), Size: size}
		if !b.store.Blobs().Has(desc.Digest) {
			progress(fmt.Sprintf("layer %d/%d: fetching %s (%.1f MB)", i+1, len(layers), desc.Digest, float64(size)/1e6))
			rc, err := l.Compressed()
			if err != nil {
				return store.Image{}, fmt.Errorf("layer %s: %w", desc.Digest, err)
			}
			desc, err = b.store.Blobs().WriteBlobFrom(ociType, rc, desc.Digest, size)
			rc.Close()
			if err != nil {
				return store.Image{}, fmt.Errorf("layer %d: %w", i+1, err)
			}
		}
		descs = append(descs, desc)
		diffID := cfg.RootFS.DiffIDs[i]
		parent := chain
		chain = snapshot.ChainID(parent, diffID)
		if b.store.Snapshots().Exists(chain) {
			continue
		}
		progress(fmt.Sprintf("layer %d/%d: unpacking %s", i+1, len(layers), desc.Digest))
		skipped, err := b.unpackLayer(ctx, parent, chain, desc, diffID)
		if err != nil {
			return store.Image{}, fmt.Errorf("layer %d (%s): %w", i+1, desc.Digest, err)
		}
		if len(skipped) > 0 {
			b.progress.Event(Event{Kind: EventWarn, Line: skippedDevicesWarning(i+1, len(layers), desc.Digest, skipped)})
		}
	}
	manifest, err := b.store.Blobs().WriteJSON(ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cfgDesc,
		Layers:    descs,
	})
	if err != nil {
		return store.Image{}, err
	}
	rec := store.Image{ID: imageID([]byte("pulled " + manifest.Digest.String())), Manifest: manifest, ChainID: chain,
		Shell: cfg.Config.Shell, Health: cfg.Config.Healthcheck}
	return rec, b.store.PutImage(rec)
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

// unpackLayer makes snapshot chain on parent from the stored layer blob
// desc, checking that its uncompressed content has diffID. It returns the
// layer's device nodes that were not created (rootless: no mknod).
func (b *Builder) unpackLayer(ctx context.Context, parent, chain digest.Digest, desc ocispec.Descriptor, diffID digest.Digest) (skipped []string, err error) {
	r, err := b.store.Blobs().OpenLayer(desc)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return b.store.Snapshots().Apply(ctx, parent, chain, r, diffID)
}
