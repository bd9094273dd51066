package oci

import (
	"encoding/json"
	"fmt"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// WriteImage stores config and a manifest listing layers (base layer first) and
// returns the manifest's descriptor. config.RootFS.DiffIDs must list the
// layers' diffIDs in the same order; WriteImage checks the counts agree.
func (s *Store) WriteImage(config ocispec.Image, layers []ocispec.Descriptor) (ocispec.Descriptor, error) {
	return s.WriteDockerImage(dockerspec.DockerOCIImage{Image: config, Config: dockerspec.DockerOCIImageConfig{ImageConfig: config.Config}}, layers)
}

// WriteDockerImage is WriteImage for a config with Docker's extensions to
// the OCI image config (Healthcheck, Shell, OnBuild; moby/docker-image-spec),
// which BuildKit writes the same way.
func (s *Store) WriteDockerImage(config dockerspec.DockerOCIImage, layers []ocispec.Descriptor) (ocispec.Descriptor, error) {
	img, err := DescribeDockerImage(config, layers)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if _, err := s.WriteBlob(img.Config.MediaType, img.ConfigJSON); err != nil {
		return ocispec.Descriptor{}, err
	}
	return s.WriteBlob(img.Manifest.MediaType, img.ManifestJSON)
}

// DescribedImage is an image's manifest and config as WriteDockerImage
// writes them, in memory.
type DescribedImage struct {
	Manifest     ocispec.Descriptor
	ManifestJSON []byte
	Config       ocispec.Descriptor
	ConfigJSON   []byte
}

// DescribeDockerImage returns the blobs WriteDockerImage would write for
// config and layers, and their descriptors, without writing them: a dry
// run can name an image by the digest a build will give it.
func DescribeDockerImage(config dockerspec.DockerOCIImage, layers []ocispec.Descriptor) (DescribedImage, error) {
	if len(config.RootFS.DiffIDs) != len(layers) {
		return DescribedImage{}, fmt.Errorf("oci image: config lists %d diffIDs for %d layers", len(config.RootFS.DiffIDs), len(layers))
	}
	config.RootFS.Type = "layers"
	cb, err := json.Marshal(config)
	if err != nil {
		return DescribedImage{}, err
	}
	cdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	if layers == nil {
		layers = []ocispec.Descriptor{}
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cdesc,
		Layers:    layers,
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return DescribedImage{}, err
	}
	return DescribedImage{
		Manifest:     ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))},
		ManifestJSON: mb,
		Config:       cdesc,
		ConfigJSON:   cb,
	}, nil
}

// Manifest reads the manifest blob d.
func (s *Store) Manifest(d digest.Digest) (ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := s.ReadJSON(d, &m); err != nil {
		return m, err
	}
	if m.MediaType != "" && m.MediaType != ocispec.MediaTypeImageManifest {
		return m, fmt.Errorf("oci image: blob %s is a %s, not an image manifest", d, m.MediaType)
	}
	return m, nil
}

// Config reads the image config that manifest m points to.
func (s *Store) Config(m ocispec.Manifest) (ocispec.Image, error) {
	var c ocispec.Image
	err := s.ReadJSON(m.Config.Digest, &c)
	return c, err
}
