package remotecache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/oci"
	"github.com/snapbuild/snapbuild/registry"
	"github.com/snapbuild/snapbuild/snapshot"
)

// Write writes cfg as the cache artifact dest names (docker://REF or
// oci:DIR[:TAG]), its layers read from blobs. A layer the destination has
// is not sent again; a registry is asked first (HEAD), a layout has the
// file. A layer that from (nil: none) took from a cache in another
// repository of dest's registry is mounted from there (a cross-repository
// blob mount) instead of being uploaded. An image or cache already under
// dest's tag is replaced. opts are the registry's (credentials, insecure
// hosts). A layer cfg names that blobs lacks is an error naming it;
// nothing is written then.
func Write(ctx context.Context, dest registry.Reference, cfg *Config, blobs *oci.Store, from *Importer, opts ...registry.Option) error {
	img, err := artifactImage(cfg, blobs, mountSource(dest, from))
	if err != nil {
		return fmt.Errorf("cache %s: %w", dest, err)
	}
	return registry.Write(ctx, img, dest, opts...)
}

// mountSource returns, for a layer digest, the repository of dest's
// registry that from took the layer from (nil when there is none, or it
// is dest's own repository).
func mountSource(dest registry.Reference, from *Importer) func(digest.Digest) name.Reference {
	return func(d digest.Digest) name.Reference {
		if dest.Transport != registry.Docker {
			return nil
		}
		o, ok := from.origin(d)
		if !ok || o.Name.Context().RegistryStr() != dest.Name.Context().RegistryStr() || o.Name.Context().String() == dest.Name.Context().String() {
			return nil
		}
		return o.Name
	}
}

// artifactImage is cfg as a go-containerregistry image whose layers are
// the store's blobs as they are.
func artifactImage(cfg *Config, blobs *oci.Store, mountFrom func(digest.Digest) name.Reference) (v1.Image, error) {
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	layers := cfg.blobs()
	for _, l := range layers {
		if !blobs.Has(l.Digest) {
			return nil, fmt.Errorf("layer %s is not in the store (pruned while building?)", l.Digest)
		}
	}
	if layers == nil {
		layers = []ocispec.Descriptor{}
	}
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: ConfigMediaType,
		Config:       ocispec.Descriptor{MediaType: ConfigMediaType, Digest: digest.FromBytes(raw), Size: int64(len(raw))},
		Layers:       layers,
	}
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	img, err := partial.CompressedToImage(&artifact{config: raw, manifest: rawManifest, layers: layers, blobs: blobs})
	if err != nil {
		return nil, err
	}
	out := &mountingImage{Image: img}
	for _, l := range layers {
		layer, err := partial.CompressedToLayer(&storeBlob{desc: l, blobs: blobs})
		if err != nil {
			return nil, err
		}
		if from := mountFrom(l.Digest); from != nil {
			// remote.Write mounts a MountableLayer from its repository.
			layer = &remote.MountableLayer{Layer: layer, Reference: from}
		}
		out.layers = append(out.layers, layer)
	}
	return out, nil
}

// mountingImage is an image whose layers are given: some of them
// remote.MountableLayers, which partial's images never return.
type mountingImage struct {
	v1.Image
	layers []v1.Layer
}

func (m *mountingImage) Layers() ([]v1.Layer, error) { return m.layers, nil }

func (m *mountingImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	for _, l := range m.layers {
		if d, err := l.Digest(); err == nil && d == h {
			return l, nil
		}
	}
	return m.Image.LayerByDigest(h) // the config
}

// artifact is the partial.CompressedImageCore of a cache artifact.
type artifact struct {
	config, manifest []byte
	layers           []ocispec.Descriptor
	blobs            *oci.Store
}

func (a *artifact) RawConfigFile() ([]byte, error)      { return a.config, nil }
func (a *artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *artifact) RawManifest() ([]byte, error)        { return a.manifest, nil }

func (a *artifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range a.layers {
		if l.Digest.String() == h.String() {
			return &storeBlob{desc: l, blobs: a.blobs}, nil
		}
	}
	return nil, fmt.Errorf("blob %s is not a layer of the cache", h)
}

// storeBlob is a layer blob of the store.
type storeBlob struct {
	desc  ocispec.Descriptor
	blobs *oci.Store
}

func (b *storeBlob) Digest() (v1.Hash, error) { return v1.NewHash(b.desc.Digest.String()) }
func (b *storeBlob) Size() (int64, error)     { return b.desc.Size, nil }
func (b *storeBlob) MediaType() (types.MediaType, error) {
	return types.MediaType(b.desc.MediaType), nil
}
func (b *storeBlob) Compressed() (io.ReadCloser, error) { return b.blobs.Open(b.desc.Digest) }

// Source is one cache opened for reading (--cache-from): its config in
// memory, its layers fetched on demand.
type Source struct {
	ref    registry.Reference
	art    *registry.Artifact
	cfg    Config
	layers map[digest.Digest]bool // the manifest's layers
}

// Open reads the manifest and config of the cache ref names. A reference
// that holds no snapbuild cache is an error matching ErrNoCache (and
// registry.ErrNotFound when nothing is there).
func Open(ctx context.Context, ref registry.Reference, opts ...registry.Option) (*Source, error) {
	art, err := registry.OpenArtifact(ctx, ref, opts...)
	if err != nil {
		return nil, err
	}
	if art.Manifest.Config.MediaType != ConfigMediaType {
		return nil, fmt.Errorf("%s: %w: its config is a %s, not a %s", ref, ErrNoCache, art.Manifest.Config.MediaType, ConfigMediaType)
	}
	s := &Source{ref: ref, art: art, layers: map[digest.Digest]bool{}}
	dec := json.NewDecoder(bytes.NewReader(art.Config))
	if err := dec.Decode(&s.cfg); err != nil {
		return nil, fmt.Errorf("%s: %w: its config cannot be read: %v", ref, ErrNoCache, err)
	}
	for _, l := range art.Manifest.Layers {
		s.layers[digest.Digest(l.Digest.String())] = true
	}
	return s, nil
}

// Ref is where the cache was read from.
func (s *Source) Ref() registry.Reference { return s.ref }

// SingleID reports whether the cache was written in single-ID mode: its
// layers' owners are squashed to 0, right only for a store in that mode.
func (s *Source) SingleID() bool { return s.cfg.IDMap == IDMapSingle }

// Keys is how many records of each kind the cache holds.
func (s *Source) Keys() (solver, steps, pins int) {
	return len(s.cfg.Solver), len(s.cfg.Steps), len(s.cfg.Pins)
}

// Importer looks keys up in the caches opened for a build, in the order
// given, and makes what a record names local before reporting a hit. It is
// safe for concurrent use.
type Importer struct {
	sources []*Source
	warn    func(string)

	mu      sync.Mutex
	failed  map[failure]error                    // blobs that failed verification, by source and digest
	origins map[digest.Digest]registry.Reference // blobs taken from a registry cache, by digest
}

// NewImporter returns an Importer over sources; warn receives one line
// per record refused (nil: discarded).
func NewImporter(sources []*Source, warn func(string)) *Importer {
	if warn == nil {
		warn = func(string) {}
	}
	return &Importer{sources: sources, warn: warn, failed: map[failure]error{}, origins: map[digest.Digest]registry.Reference{}}
}

// failure names a blob of one source: a blob refused in one cache is asked
// of the next.
type failure struct {
	source *Source
	blob   digest.Digest
}

// Unpacker makes snapshot chain on parent from the stored layer desc,
// checking that its uncompressed content has diffID; a chain that exists
// is left as it is.
type Unpacker func(ctx context.Context, parent, chain digest.Digest, desc ocispec.Descriptor, diffID digest.Digest) error

// Solver makes the outputs recorded under the solver key local: each
// layer fetched into blobs (its digest and size checked) and unpacked by
// unpack (its diffID checked), base first. It returns false, after a
// warning naming the cache, the key and the blob, when a layer is missing
// from the cache or fails a check: the op then runs. Only errors of ctx
// are returned.
func (im *Importer) Solver(ctx context.Context, key digest.Digest, blobs *oci.Store, unpack Unpacker) ([]Output, bool, error) {
	if im == nil {
		return nil, false, nil
	}
	for _, s := range im.sources {
		outs, ok := s.cfg.Solver[key]
		if !ok {
			continue
		}
		if err := im.fetchAll(ctx, s, "key "+key.Encoded(), outs, blobs, unpack); err != nil {
			if ctx.Err() != nil {
				return nil, false, ctx.Err()
			}
			continue
		}
		im.taken(s, outs)
		return outs, true, nil
	}
	return nil, false, nil
}

// taken records the layers of outs as found in s, when s is a registry.
func (im *Importer) taken(s *Source, outs []Output) {
	if s.ref.Transport != registry.Docker {
		return
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	for _, o := range outs {
		for _, l := range o.Layers {
			if _, ok := im.origins[l.Digest]; !ok {
				im.origins[l.Digest] = s.ref
			}
		}
	}
}

// origin is the registry cache a layer of a hit came from.
func (im *Importer) origin(d digest.Digest) (registry.Reference, bool) {
	if im == nil {
		return registry.Reference{}, false
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	r, ok := im.origins[d]
	return r, ok
}

// Pin returns the pin recorded for the base definition key defKey and the
// step it names, the step's layers made local as Solver makes them, and
// the cache it took them from.
func (im *Importer) Pin(ctx context.Context, defKey string, stepKey func(pin json.RawMessage) (string, error), blobs *oci.Store, unpack Unpacker) (json.RawMessage, string, Step, registry.Reference, bool, error) {
	var none registry.Reference
	if im == nil {
		return nil, "", Step{}, none, false, nil
	}
	for _, s := range im.sources {
		pin, ok := s.cfg.Pins[defKey]
		if !ok {
			continue
		}
		key, err := stepKey(pin)
		if err != nil {
			im.warn(fmt.Sprintf("cache %s: base pin %s: %v: not used", s.ref, shortKey(defKey), err))
			continue
		}
		st, ok := s.cfg.Steps[key]
		if !ok {
			im.warn(fmt.Sprintf("cache %s: base pin %s names step %s, which the cache lacks: not used", s.ref, shortKey(defKey), shortKey(key)))
			continue
		}
		if err := im.fetchAll(ctx, s, "base "+shortKey(defKey), []Output{st.Output}, blobs, unpack); err != nil {
			if ctx.Err() != nil {
				return nil, "", Step{}, none, false, ctx.Err()
			}
			continue
		}
		im.taken(s, []Output{st.Output})
		return pin, key, st, s.ref, true, nil
	}
	return nil, "", Step{}, none, false, nil
}

// fetchAll makes every layer of outs local, base first, warning (what
// names the record) and returning the first failure.
func (im *Importer) fetchAll(ctx context.Context, s *Source, what string, outs []Output, blobs *oci.Store, unpack Unpacker) error {
	for _, o := range outs {
		if err := o.check(); err != nil {
			im.warn(fmt.Sprintf("cache %s: %s: a malformed record (%v): the step runs", s.ref, what, err))
			return err
		}
		var chain digest.Digest
		for i, l := range o.Layers {
			parent := chain
			chain = snapshot.ChainID(parent, o.DiffIDs[i])
			if err := im.fetch(ctx, s, l, blobs); err != nil {
				if ctx.Err() == nil {
					im.warnBlob(s, what, l.Digest, err)
				}
				return err
			}
			mt, err := oci.LayerMediaType(l.MediaType)
			if err != nil {
				im.warnBlob(s, what, l.Digest, err)
				return err
			}
			l.MediaType = mt
			if err := unpack(ctx, parent, chain, l, o.DiffIDs[i]); err != nil {
				if ctx.Err() == nil {
					im.warnBlob(s, what, l.Digest, fmt.Errorf("unpacking it against the cache record's diffID %s: %w", o.DiffIDs[i], err))
				}
				return err
			}
		}
	}
	return nil
}

// warnBlob warns once per blob of s that failed; later records of s naming
// it fail without a word.
func (im *Importer) warnBlob(s *Source, what string, d digest.Digest, err error) {
	im.mu.Lock()
	_, seen := im.failed[failure{s, d}]
	im.failed[failure{s, d}] = err
	im.mu.Unlock()
	if !seen {
		im.warn(fmt.Sprintf("cache %s: %s: layer %s refused: %v; the step runs", s.ref, what, d, err))
	}
}

// fetch stores the layer l of s in blobs, unless blobs has it.
func (im *Importer) fetch(ctx context.Context, s *Source, l ocispec.Descriptor, blobs *oci.Store) error {
	im.mu.Lock()
	err := im.failed[failure{s, l.Digest}]
	im.mu.Unlock()
	if err != nil {
		return err
	}
	if blobs.Has(l.Digest) {
		return nil
	}
	if !s.layers[l.Digest] {
		return errors.New("the cache's manifest does not list it")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h, err := v1.NewHash(l.Digest.String())
	if err != nil {
		return err
	}
	rc, err := s.art.Blob(ctx, v1.Descriptor{Digest: h, Size: l.Size, MediaType: types.MediaType(l.MediaType)})
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err = blobs.WriteBlobFrom(l.MediaType, rc, l.Digest, l.Size); err != nil {
		var de *registry.DigestError
		if errors.As(err, &de) {
			return de // it names the blob, the source and what differs
		}
	}
	return err
}

func shortKey(k string) string {
	if len(k) > 12 {
		return k[:12]
	}
	return k
}

// Recorder collects what a build touched, for an export: the records of
// every solver key it made or took from the cache, which of them the
// images are made of (ModeMin), and the base pins it used. It is safe for
// concurrent use; the zero value is not: use NewRecorder.
type Recorder struct {
	mu     sync.Mutex
	solver map[digest.Digest][]Output
	final  map[digest.Digest]bool
	steps  map[string]Step
	pins   map[string]json.RawMessage
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{solver: map[digest.Digest][]Output{}, final: map[digest.Digest]bool{}, steps: map[string]Step{}, pins: map[string]json.RawMessage{}}
}

// Solver records the outputs of solver key key. A nil Recorder records
// nothing.
func (r *Recorder) Solver(key digest.Digest, outs []Output) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.solver[key] = outs
}

// Final marks solver keys as those of an image's steps.
func (r *Recorder) Final(keys ...digest.Digest) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		r.final[k] = true
	}
}

// Pin records the pin of base definition defKey and the step it names.
func (r *Recorder) Pin(defKey string, pin json.RawMessage, stepKey string, st Step) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pins[defKey] = pin
	r.steps[stepKey] = st
}

// Config is what an export of mode writes: ModeMax every solver key
// recorded, ModeMin those marked Final; the pins and their steps in both.
func (r *Recorder) Config(mode Mode) *Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := &Config{Solver: map[digest.Digest][]Output{}, Steps: map[string]Step{}, Pins: map[string]json.RawMessage{}}
	for k, outs := range r.solver {
		if mode == ModeMax || r.final[k] {
			c.Solver[k] = outs
		}
	}
	for k, s := range r.steps {
		c.Steps[k] = s
	}
	for k, p := range r.pins {
		c.Pins[k] = p
	}
	return c
}
