package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/internal/remotecache"
	"github.com/snapbuild/snapbuild/internal/store"
	"github.com/snapbuild/snapbuild/registry"
	"github.com/snapbuild/snapbuild/sandbox"
	"github.com/snapbuild/snapbuild/snapshot"
)

// remoteCache is what an Engine's runs share of build --cache-from and
// --cache-to: the caches read (opened once, by the first build that needs
// them) and what the builds touched, for ExportCache.
type remoteCache struct {
	from []registry.Reference
	to   []remotecache.Export

	once     sync.Once
	importer *remotecache.Importer
	recorder *remotecache.Recorder

	mu             sync.Mutex
	builds, failed int // Builds that returned, and those that failed
}

// built counts a Build that returned err.
func (rc *remoteCache) built(err error) {
	if rc == nil {
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.builds++
	if err != nil {
		rc.failed++
	}
}

// WithCacheFrom is snapbuild.WithCacheFrom.
func WithCacheFrom(refs ...string) Option {
	return func(b *Engine) error {
		for _, s := range refs {
			r, err := remotecache.ParseImport(s)
			if err != nil {
				return err
			}
			b.cache().from = append(b.cache().from, r)
		}
		return nil
	}
}

// WithCacheTo is snapbuild.WithCacheTo.
func WithCacheTo(refs ...string) Option {
	return func(b *Engine) error {
		for _, ref := range refs {
			e, err := remotecache.ParseExport(ref)
			if err != nil {
				return err
			}
			b.cache().to = append(b.cache().to, e)
		}
		return nil
	}
}

func (b *Engine) cache() *remoteCache {
	if b.caches == nil {
		b.caches = &remoteCache{}
	}
	return b.caches
}

// canUnpack reports whether this process can make snapshots from layers:
// root, or inside the build namespace (a rootless store's layers hold
// subordinate IDs).
func canUnpack() bool { return os.Geteuid() == 0 || sandbox.InUserNamespace() }

// remoteImporter is the Importer of the caches given with WithCacheFrom,
// opened on first use; nil when none was given, or when this process
// cannot unpack layers (a rootless build outside the namespace: a miss
// there sends the build into it, where the caches are read). A cache that
// cannot be read is a warning, and the build goes on without it.
func (b *Engine) remoteImporter(ctx context.Context) *remotecache.Importer {
	rc := b.caches
	if rc == nil || len(rc.from) == 0 || !canUnpack() {
		return nil
	}
	rc.once.Do(func() {
		var srcs []*remotecache.Source
		for _, ref := range rc.from {
			s, err := remotecache.Open(ctx, ref, b.registryOpts...)
			if err != nil {
				b.warn(fmt.Sprintf("--cache-from %s: %v: building without it", ref, err))
				continue
			}
			if s.SingleID() && !sandbox.SingleID() {
				// Its layers were unpacked, and committed, with every
				// owner squashed to 0: right for another single-ID
				// store only (which squashes any cache's layers).
				b.warn(fmt.Sprintf("cache %s was written in single-ID mode: its layers' owners are squashed to 0; not used outside single-ID mode", ref))
				continue
			}
			srcs = append(srcs, s)
		}
		rc.importer = remotecache.NewImporter(srcs, b.warn)
	})
	return rc.importer
}

// remoteRecorder is the Recorder of the builds' keys when WithCacheTo was
// given, else nil.
func (b *Engine) remoteRecorder() *remotecache.Recorder {
	if b.caches == nil || len(b.caches.to) == 0 {
		return nil
	}
	return b.caches.recorder
}

func (b *Engine) warn(line string) { b.progress.Event(Event{Kind: EventWarn, Line: line}) }

// finalKeys marks the keys of the ops the target of g is made of (its
// chain of first inputs, down to its base image's source) as those a
// mode=min export writes: what a rebuild of the image asks the cache for.
func finalKeys(rec *remotecache.Recorder, g *build.Graph, keys map[digest.Digest]digest.Digest) {
	if rec == nil {
		return
	}
	for v := g.Target.Vertex; v != nil; {
		rec.Final(keys[v.Digest])
		if len(v.Inputs) == 0 {
			break
		}
		v = v.Inputs[mainInput(v)].Vertex
	}
}

// importPin takes the Debian base pinned for defKey from the remote cache,
// when the store has no usable one: the layer fetched and checked, its
// snapshot unpacked, its step record and the pin written. It reports
// whether it did.
func (b *Engine) importPin(ctx context.Context, defKey string, ev Event) (bool, error) {
	im := b.remoteImporter(ctx)
	if im == nil || b.plan != nil {
		return false, nil
	}
	raw, key, st, from, ok, err := im.Pin(ctx, defKey, func(raw json.RawMessage) (string, error) {
		var p basePin
		if err := json.Unmarshal(raw, &p); err != nil {
			return "", err
		}
		if p.Key == "" || len(p.Key) != 64 {
			return "", errors.New("it names no step")
		}
		return p.Key, nil
	}, b.store.Blobs(), b.unpack)
	if err != nil || !ok {
		return false, err
	}
	rec := store.Step{Key: key, Instruction: st.Instruction, Empty: st.Empty, Python: st.Python}
	if n := len(st.Layers); n > 0 {
		rec.Layer, rec.DiffID = st.Layers[n-1], st.DiffIDs[n-1]
		for _, d := range st.DiffIDs {
			rec.ChainID = snapshot.ChainID(rec.ChainID, d)
		}
	}
	if err := b.store.PutStep(rec); err != nil {
		return false, err
	}
	// The entry's label said how this site makes the base (bootstrapped);
	// this one was made elsewhere.
	b.progress.Event(ev.output(fmt.Sprintf("debian: base taken from cache %s, not bootstrapped here", from)))
	return true, b.store.WriteJSON(pinRel(defKey), raw)
}

// unpack is a remotecache.Unpacker over the store's snapshots.
func (b *Engine) unpack(ctx context.Context, parent, chain digest.Digest, desc ocispec.Descriptor, diffID digest.Digest) error {
	if b.store.Snapshots().Exists(chain) {
		return nil
	}
	rc, err := b.store.Blobs().OpenLayer(desc)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = b.store.Snapshots().Apply(ctx, parent, chain, rc, diffID)
	return err
}

// recordPin records the pin of defKey and its step for an export.
func (b *Engine) recordPin(defKey string) {
	rec := b.remoteRecorder()
	if rec == nil {
		return
	}
	pin, ok, err := b.readPin(defKey)
	if err != nil || !ok {
		return
	}
	raw, err := os.ReadFile(filepath.Join(b.store.Root(), pinRel(defKey)))
	if err != nil {
		return
	}
	st := remotecache.Step{Instruction: pin.Instruction, Empty: pin.Empty, Python: pin.Python}
	if !pin.Empty {
		if pin.ChainID != snapshot.ChainID("", pin.DiffID) {
			return // a base is one layer on nothing
		}
		st.Layers, st.DiffIDs = []ocispec.Descriptor{pin.Layer}, []digest.Digest{pin.DiffID}
	}
	rec.Pin(defKey, raw, pin.Key, st)
}

// ExportCache is snapbuild.Builder.ExportCache.
func (b *Engine) ExportCache(ctx context.Context) ([]CacheExport, error) {
	rc := b.caches
	if rc == nil || len(rc.to) == 0 {
		return nil, errors.New("ExportCache: no cache destination: give WithCacheTo")
	}
	rc.mu.Lock()
	builds, failed := rc.builds, rc.failed
	rc.mu.Unlock()
	switch {
	case failed > 0:
		return nil, fmt.Errorf("cache not written: %d of the %d builds failed (a cache is written after builds that all succeeded)", failed, builds)
	case builds == 0:
		return nil, errors.New("cache not written: nothing was built yet (call ExportCache after Build)")
	}
	if err := b.store.LockShared(); err != nil {
		return nil, err
	}
	defer b.store.Unlock()
	single := sandbox.SingleID()
	if !single {
		// Outside the build namespace (a fully cached rootless build),
		// the store says which mapping its snapshots were made in.
		m, err := os.ReadFile(filepath.Join(b.store.Root(), "idmap"))
		single = err == nil && strings.TrimSpace(string(m)) == "single"
	}
	var out []CacheExport
	var errs []error
	for _, to := range rc.to {
		cfg := rc.recorder.Config(to.Mode)
		if single {
			cfg.IDMap = remotecache.IDMapSingle
		}
		if err := remotecache.Write(ctx, to.Ref, cfg, b.store.Blobs(), rc.importer, slices.Clone(b.registryOpts)...); err != nil {
			if to.IgnoreError && ctx.Err() == nil {
				b.warn(fmt.Sprintf("--cache-to %s: %v (ignore-error=true: the build stands)", to.Ref, err))
				continue
			}
			errs = append(errs, err)
			continue
		}
		n := map[digest.Digest]bool{}
		for _, outs := range cfg.Solver {
			for _, o := range outs {
				for _, l := range o.Layers {
					n[l.Digest] = true
				}
			}
		}
		for _, s := range cfg.Steps {
			for _, l := range s.Layers {
				n[l.Digest] = true
			}
		}
		out = append(out, CacheExport{Ref: to.Ref.String(), Mode: string(to.Mode), Keys: len(cfg.Solver) + len(cfg.Steps), Layers: len(n)})
	}
	return out, errors.Join(errs...)
}

// CacheExport is snapbuild.CacheExport.
type CacheExport struct {
	Ref    string `json:"ref"`    // where the cache was written
	Mode   string `json:"mode"`   // "min" or "max"
	Keys   int    `json:"keys"`   // records written: solver keys and base steps
	Layers int    `json:"layers"` // layer blobs the cache names
}
