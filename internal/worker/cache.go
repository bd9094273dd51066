package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/internal/atomicfile"
	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/internal/remotecache"
	"github.com/snapbuild/snapbuild/oci"
	"github.com/snapbuild/snapbuild/snapshot"
)

// Cache returns the build.Cache of the Worker: one JSON record per cache
// key under the worker's dir (keys/<hex>.json) listing each output's
// snapshot, layers and diffIDs (the store's prune reads these records:
// internal/store's solverRecord). A hit sets the record's access time,
// its last use. A record whose snapshots or layer blobs are
// gone is a miss, unless the remote cache (WithRemoteCache) has the key:
// its record is made local first (layers fetched and checked, snapshots
// unpacked) and then written as a record of the store. Outputs that are local sources (directories that live as
// long as the Worker) are not recorded: a vertex with one runs again.
func (w *Worker) Cache() build.Cache { return (*cache)(w) }

type cache Worker

// cacheRecord is what a record holds per output.
type cacheRecord struct {
	Chain   digest.Digest   `json:"chain,omitempty"`
	Layers  json.RawMessage `json:"layers,omitempty"`
	DiffIDs []digest.Digest `json:"diffIDs,omitempty"`
}

func (c *cache) path(key digest.Digest) (string, error) {
	if err := key.Validate(); err != nil {
		return "", fmt.Errorf("cache key %q: %w", key, err)
	}
	return filepath.Join(c.dir, "keys", key.Encoded()+".json"), nil
}

// Get returns the outputs recorded under key when everything they name is
// still in the store.
func (c *cache) Get(ctx context.Context, key digest.Digest) ([]build.Ref, bool, error) {
	p, err := c.path(key)
	if err != nil {
		return nil, false, err
	}
	refs, ok, err := c.local(ctx, p, key)
	if err != nil || ok {
		if ok {
			c.opts.record.Solver(key, outputsOf(refs))
		}
		return refs, ok, err
	}
	return c.fromRemote(ctx, key)
}

// local is Get from the store's own records.
func (c *cache) local(ctx context.Context, p string, key digest.Digest) ([]build.Ref, bool, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("cache record %s: %w", key, err)
	}
	var recs []cacheRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, false, fmt.Errorf("cache record %s: %w", key, err)
	}
	refs := make([]build.Ref, len(recs))
	for i, rec := range recs {
		r := &Ref{Chain: rec.Chain, DiffIDs: rec.DiffIDs}
		if len(rec.Layers) > 0 {
			if err := json.Unmarshal(rec.Layers, &r.Layers); err != nil {
				return nil, false, fmt.Errorf("cache record %s: %w", key, err)
			}
		}
		if r.Chain != "" && !c.snaps.Exists(r.Chain) {
			return nil, false, nil
		}
		for _, l := range r.Layers {
			if !c.blobs.Has(l.Digest) {
				return nil, false, nil
			}
		}
		refs[i] = r
	}
	// A hit marks the record used (its access time; its modification
	// time stays when it was written): prune's --filter until and
	// --keep-storage go by the later of the two.
	_ = os.Chtimes(p, time.Now(), time.Time{})
	return refs, true, nil
}

// Put records outputs under key, unless one of them is a local source.
func (c *cache) Put(ctx context.Context, key digest.Digest, outputs []build.Ref) error {
	p, err := c.path(key)
	if err != nil {
		return err
	}
	recs := make([]cacheRecord, len(outputs))
	for i, o := range outputs {
		r, err := asRef(o)
		if err != nil {
			return err
		}
		if r == nil {
			continue
		}
		if r.Dir != "" {
			return nil
		}
		layers, err := json.Marshal(r.Layers)
		if err != nil {
			return err
		}
		recs[i] = cacheRecord{Chain: r.Chain, Layers: layers, DiffIDs: r.DiffIDs}
	}
	b, err := json.Marshal(recs)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	if err := atomicfile.Write(p, append(b, '\n'), 0o644); err != nil {
		return err
	}
	c.opts.record.Solver(key, outputsOf(outputs))
	return nil
}

// fromRemote asks the remote cache for key; a hit is made local (its
// layers fetched and verified, its snapshots unpacked) and recorded in the
// store before it is returned.
func (c *cache) fromRemote(ctx context.Context, key digest.Digest) ([]build.Ref, bool, error) {
	w := (*Worker)(c)
	outs, ok, err := c.opts.remote.Solver(ctx, key, c.blobs, w.unpack)
	if err != nil || !ok {
		return nil, false, err
	}
	refs := make([]build.Ref, len(outs))
	for i, o := range outs {
		r := &Ref{}
		for j, l := range o.Layers {
			r.Chain = snapshot.ChainID(r.Chain, o.DiffIDs[j])
			l.MediaType, _ = oci.LayerMediaType(l.MediaType) // checked by Solver
			r.Layers = append(r.Layers, ocispec.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size})
			r.DiffIDs = append(r.DiffIDs, o.DiffIDs[j])
		}
		refs[i] = r
	}
	if err := c.Put(ctx, key, refs); err != nil {
		return nil, false, err
	}
	return refs, true, nil
}

// outputsOf is refs as the remote cache records outputs.
func outputsOf(refs []build.Ref) []remotecache.Output {
	outs := make([]remotecache.Output, len(refs))
	for i, o := range refs {
		if r, _ := asRef(o); r != nil {
			outs[i] = remotecache.Output{Layers: r.Layers, DiffIDs: r.DiffIDs}
		}
	}
	return outs
}
