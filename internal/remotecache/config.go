// Package remotecache is snapbuild's step cache as an OCI artifact, kept in
// any registry or OCI layout (build --cache-to, --cache-from), as BuildKit's
// registry cache keeps its own.
//
// The artifact is one OCI image manifest:
//
//	artifactType, config.mediaType  application/vnd.snapbuild.cache.config.v1+json
//	config                          a Config: cache keys -> records
//	layers                          every layer blob the records name, once each
//
// The config maps the build's cache keys to what a store needs to take a
// step from the cache without running it: for a solver key (an op of the
// build graph) each output's whole layer stack with its diffIDs; for a step
// key (a Debian base) its layer stack and instruction; for a base
// definition, the pin that names that step. Snapshot names are not in it:
// a store computes chain IDs from the diffIDs.
//
// Writing (Write) goes through go-containerregistry, so a blob the
// destination already has is not sent again (a registry answers a HEAD,
// a layout has the file). Reading (Open) fetches only the manifest and
// config; a layer is fetched when a build misses a key that names it, and
// is trusted only once its digest and its diffID were checked (Import).
package remotecache

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/registry"
)

// ConfigMediaType is the media type of the artifact's config, and its
// artifactType.
const ConfigMediaType = "application/vnd.snapbuild.cache.config.v1+json"

// Config is the artifact's config: the records, by cache key.
type Config struct {
	// Solver maps solver cache keys (worker/keys/) to the outputs of the
	// op: per output, its layers base first.
	Solver map[digest.Digest][]Output `json:"solver,omitempty"`
	// Steps maps step keys (steps/) to step records.
	Steps map[string]Step `json:"steps,omitempty"`
	// Pins maps base definition keys (bases/) to the pin records as the
	// store holds them; the step a pin names is in Steps.
	Pins map[string]json.RawMessage `json:"pins,omitempty"`
	// IDMap is IDMapSingle when the store that wrote the cache built in
	// single-ID mode, whose layers have every owner squashed to 0 (a
	// useradd's home is 0:0 there); "" otherwise. Only a single-ID store
	// takes such a cache (see Source.SingleID).
	IDMap string `json:"idMap,omitempty"`
}

// IDMapSingle is Config.IDMap of a cache written in single-ID mode.
const IDMapSingle = "single"

// Output is one output of an op: its layers, base first, and their diffIDs
// (the uncompressed digests), one per layer. An output with no layers is an
// empty filesystem.
type Output struct {
	Layers  []ocispec.Descriptor `json:"layers,omitempty"`
	DiffIDs []digest.Digest      `json:"diffIDs,omitempty"`
}

// Step is a step record of the store: the step's instruction and the whole
// layer stack of its result, its own layer last (Empty: it changed no file,
// and Output is empty).
type Step struct {
	Instruction string `json:"instruction"`
	Empty       bool   `json:"empty,omitempty"`
	Output
	Python string `json:"python,omitempty"`
}

// check reports the first output whose layers and diffIDs do not pair up,
// or whose descriptors are not sha256 layer blobs.
func (o Output) check() error {
	if len(o.Layers) != len(o.DiffIDs) {
		return fmt.Errorf("%d layers but %d diffIDs", len(o.Layers), len(o.DiffIDs))
	}
	for i, l := range o.Layers {
		if err := l.Digest.Validate(); err != nil || l.Digest.Algorithm() != digest.SHA256 {
			return fmt.Errorf("layer %d: digest %q is not a sha256 digest", i+1, l.Digest)
		}
		if err := o.DiffIDs[i].Validate(); err != nil {
			return fmt.Errorf("layer %d: diffID %q: %v", i+1, o.DiffIDs[i], err)
		}
		if l.Size <= 0 {
			return fmt.Errorf("layer %d (%s): size %d", i+1, l.Digest, l.Size)
		}
	}
	return nil
}

// blobs returns every layer descriptor c names, once each, sorted by digest.
func (c *Config) blobs() []ocispec.Descriptor {
	seen := map[digest.Digest]ocispec.Descriptor{}
	add := func(o Output) {
		for _, l := range o.Layers {
			seen[l.Digest] = ocispec.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size}
		}
	}
	for _, outs := range c.Solver {
		for _, o := range outs {
			add(o)
		}
	}
	for _, s := range c.Steps {
		add(s.Output)
	}
	out := slices.Collect(maps.Values(seen))
	slices.SortFunc(out, func(a, b ocispec.Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	return out
}

// Mode is which keys an export writes, as in BuildKit's cache exporters.
type Mode string

const (
	// ModeMin writes the keys of the steps of the images built (what
	// rebuilding those images needs). It is the default, as BuildKit's.
	ModeMin Mode = "min"
	// ModeMax writes every key the build made or took from the cache,
	// intermediate stages too.
	ModeMax Mode = "max"
)

// Export is where and how a build writes its cache: --cache-to.
type Export struct {
	Ref  registry.Reference
	Mode Mode
	// IgnoreError makes a failed export a warning (buildx's
	// ignore-error=true); by default it fails the command.
	IgnoreError bool
}

// ParseExport parses a --cache-to value: a reference in snapbuild's
// transport syntax (docker://HOST/REPO:TAG, HOST/REPO:TAG, oci:DIR:TAG), or
// buildx's form, comma-separated key=value pairs:
//
//	type=registry,ref=HOST/REPO:TAG[,mode=min|max][,ignore-error=true]
//	type=local,dest=DIR[,tag=TAG][,mode=min|max][,ignore-error=true]   (an OCI layout)
//
// ignore-error=true makes a failed export a warning. buildx's
// image-manifest and oci-mediatypes keys (true or false) are accepted and
// change nothing: the cache is always one OCI image manifest with OCI media
// types. Other types and keys (compression among them: layers are written
// as the store holds them) are refused with an error naming them. The
// mode's default is min. A reference without a tag gets "latest", as
// BuildKit's caches; one with a digest is refused (a cache is written by
// tag).
func ParseExport(s string) (Export, error) {
	kv, ok, err := pairs(s)
	if err != nil {
		return Export{}, err
	}
	if !ok {
		ref, err := parseRef(s)
		return Export{Ref: ref, Mode: ModeMin}, err
	}
	e := Export{Mode: ModeMin}
	if m, ok := kv["mode"]; ok {
		switch Mode(m) {
		case ModeMin, ModeMax:
			e.Mode = Mode(m)
		default:
			return Export{}, fmt.Errorf("cache export %q: mode=%s: use mode=min or mode=max", s, m)
		}
		delete(kv, "mode")
	}
	for k := range kv {
		if strings.HasPrefix(k, "compression") || k == "force-compression" {
			return Export{}, fmt.Errorf("cache export %q: %s is not supported: a cache's layers are written as the store holds them (their digests are the images' own); drop the key", s, k)
		}
	}
	if e.IgnoreError, err = boolKey(s, kv, "ignore-error"); err != nil {
		return Export{}, err
	}
	for _, k := range []string{"image-manifest", "oci-mediatypes"} {
		if _, err := boolKey(s, kv, k); err != nil {
			return Export{}, err
		}
	}
	e.Ref, err = typedRef(s, kv, "dest", "mode, ignore-error, image-manifest, oci-mediatypes")
	return e, err
}

// boolKey removes key from kv and returns its value, true or false (false
// when absent).
func boolKey(s string, kv map[string]string, key string) (bool, error) {
	v, ok := kv[key]
	if !ok {
		return false, nil
	}
	delete(kv, key)
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("cache reference %q: %s=%s: use %s=true or %s=false", s, key, v, key, key)
	}
	return b, nil
}

// ParseImport parses a --cache-from value: a reference as ParseExport takes
// it, or type=registry,ref=REF or type=local,src=DIR[,tag=TAG].
func ParseImport(s string) (registry.Reference, error) {
	kv, ok, err := pairs(s)
	if err != nil {
		return registry.Reference{}, err
	}
	if !ok {
		return parseRef(s)
	}
	return typedRef(s, kv, "src", "")
}

// pairs splits buildx's key=value form; ok is false when s is not in it
// (it has no "type=").
func pairs(s string) (map[string]string, bool, error) {
	if !strings.HasPrefix(s, "type=") && !strings.Contains(s, ",type=") {
		return nil, false, nil
	}
	kv := map[string]string{}
	for _, f := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, true, fmt.Errorf("cache reference %q: %q is not key=value", s, f)
		}
		if _, dup := kv[k]; dup {
			return nil, true, fmt.Errorf("cache reference %q: %s given twice", s, k)
		}
		kv[k] = v
	}
	return kv, true, nil
}

// typedRef is the reference of buildx's form; dir names the key of a
// local directory ("dest" for exports, "src" for imports), more the other
// keys the caller took, for the error of an unknown key.
func typedRef(s string, kv map[string]string, dir, more string) (registry.Reference, error) {
	var ref registry.Reference
	var err error
	switch kv["type"] {
	case "registry":
		if kv["ref"] == "" {
			return ref, fmt.Errorf("cache reference %q: type=registry needs ref=HOST/REPO:TAG", s)
		}
		ref, err = parseRef(strings.TrimPrefix(kv["ref"], "docker://"))
		delete(kv, "ref")
	case "local":
		if kv[dir] == "" {
			return ref, fmt.Errorf("cache reference %q: type=local needs %s=DIR", s, dir)
		}
		p := "oci:" + kv[dir]
		if t := kv["tag"]; t != "" {
			p += ":" + t
		}
		ref, err = parseRef(p)
		delete(kv, dir)
		delete(kv, "tag")
	default:
		return ref, fmt.Errorf("cache reference %q: type=%s is not supported: use type=registry,ref=HOST/REPO:TAG or type=local,%s=DIR", s, kv["type"], dir)
	}
	if err != nil {
		return ref, err
	}
	delete(kv, "type")
	if len(kv) > 0 {
		known := "type, ref, " + dir + ", tag"
		if more != "" {
			known += ", " + more
		}
		return ref, fmt.Errorf("cache reference %q: unknown keys %s (known: %s)", s, strings.Join(slices.Sorted(maps.Keys(kv)), ", "), known)
	}
	return ref, nil
}

// parseRef parses a cache reference in snapbuild's transport syntax; only
// registries and OCI layouts hold a cache, under a tag: an OCI layout
// without one gets "latest" (as a registry name does, and BuildKit's local
// cache), and a digest reference is refused.
func parseRef(s string) (registry.Reference, error) {
	ref, err := registry.ParseReference(s)
	if err != nil {
		return ref, fmt.Errorf("cache reference %q: %w", s, err)
	}
	switch ref.Transport {
	case registry.Docker:
		if _, ok := ref.Name.(name.Digest); ok {
			return ref, fmt.Errorf("cache reference %q: a cache is written and read by tag, not by digest: use HOST/REPO:TAG", s)
		}
	case registry.OCI:
		if ref.Tag == "" {
			ref.Tag = "latest"
		}
	default:
		return ref, fmt.Errorf("cache reference %q: a cache is kept in a registry (docker://HOST/REPO:TAG) or an OCI layout (oci:DIR:TAG), not in %s:", s, ref.Transport)
	}
	return ref, nil
}

// ErrNoCache is returned by Open when the reference holds no cache (no
// manifest under it, or one that is not a snapbuild cache).
var ErrNoCache = errors.New("no snapbuild cache")
