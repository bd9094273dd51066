package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// The garbage collector's model, which docs/store.md tells users.
//
// Objects are the store's content: blobs, committed snapshots (each with its
// parent chain), image records and metadata records. Holders name objects:
//
//   - a named image (names.json) holds its image record, manifest, config and
//     layer blobs, its snapshot chain and its metadata record: these are
//     never removed;
//   - an active snapshot of a live process (a build step, a running
//     container) holds the chain it is mounted on: never removed either;
//   - a build cache entry holds what its record names: a step record
//     (steps/) its layer and snapshot chain, a solver record (worker/keys/)
//     its outputs' layers and chains, a base record (bases/) its bootstrap's
//     layer and chain or its pulled image, an image record that no name
//     points at (an intermediate Modal layer, a renamed or removed image)
//     what a named image would hold. Cache mounts (worker/cache/), package
//     caches (worker/pkgcache/) and file hash caches (worker/contenthash/)
//     are entries that hold only themselves.
//
// An entry is shared when every layer blob and snapshot it holds is also
// held by a named image: removing it frees (almost) nothing and only makes
// the named images' steps run again. Prune without All removes the entries
// that are not shared (BuildKit's "dangling" cache); with All it removes
// every entry. Objects that nothing holds are removed by every prune.

// PruneOptions say which build cache entries Prune removes. The zero value
// removes the entries that are not shared with a named image, whatever
// their age, and everything nothing holds.
type PruneOptions struct {
	// All removes shared entries too (and file hash caches), as
	// docker builder prune --all does: only named images and what they
	// hold are left.
	All bool
	// Until keeps entries used less than Until ago (docker builder
	// prune --filter until=DURATION). Zero: any age.
	Until time.Duration
	// KeepStorage stops removing entries, oldest first, once the build
	// cache (what entries hold and no named image does) takes at most
	// KeepStorage bytes (docker builder prune --keep-storage). Zero: no
	// limit, every entry chosen is removed.
	KeepStorage int64
}

// CacheEntry is one build cache entry.
type CacheEntry struct {
	// Kind is "step" (steps/), "solver" (worker/keys/), "base" (bases/),
	// "image" (an image record with no name), "cache-mount"
	// (worker/cache/), "package-cache" (worker/pkgcache/: the downloads
	// of installer steps, by tool, e.g. "apt", "pip", "uv-1000" for a
	// step run as uid 1000) or "file-hashes" (worker/contenthash/).
	Kind string `json:"kind"`
	// ID names the entry within its kind: a cache key, an image ID, a
	// directory's hash.
	ID string `json:"id"`
	// Description is the step's instruction, a pulled base's reference,
	// or the image's parent; "" when the record has none.
	Description string `json:"description,omitempty"`
	// LastUsed is when a build last wrote the record (its modification
	// time) or, for step and solver records, found it in the cache (its
	// access time, which snapbuild sets on a hit and prune reads without
	// changing), whichever is later.
	LastUsed time.Time `json:"lastUsed"`
	// Size is the bytes of the record and of what it holds that no named
	// image holds, in bytes (apparent sizes; what several entries hold is
	// counted in each).
	Size int64 `json:"size"`
	// Shared is true when every layer and snapshot the entry holds is in a
	// named image: prune without --all keeps it.
	Shared bool `json:"shared"`

	own      []string // the record's files, relative to the store root
	ownBytes int64    // their size
	objs     []string // the objects it holds (object keys)
	data     []string // the layer blobs and snapshots among objs
	dangling bool     // not shared whatever it holds: cache mounts, unreadable records
}

// ImageUsage is one named image's share of the store.
type ImageUsage struct {
	ID    string   `json:"id"`
	Names []string `json:"names"`
	// Size is the bytes of everything the image holds: blobs, snapshots
	// and records (apparent sizes).
	Size int64 `json:"size"`
	// Unique is the part of Size that no other named image holds.
	Unique int64 `json:"unique"`
}

// Usage says what uses the store's space, as podman system df and docker
// buildx du do. Sizes are in bytes, apparent sizes of the files.
type Usage struct {
	Images []ImageUsage `json:"images"`
	// ImagesSize is the bytes the named images hold, each object once.
	ImagesSize int64        `json:"imagesSize"`
	Cache      []CacheEntry `json:"cache"`
	// CacheSize is the bytes build cache entries hold that no named image
	// holds, each object once: what prune --all frees.
	CacheSize int64 `json:"cacheSize"`
	// CacheReclaimable is what prune without --all frees of CacheSize.
	CacheReclaimable int64 `json:"cacheReclaimable"`
	// Unreferenced counts the blobs, snapshots and records nothing holds,
	// and the scratch of killed processes; every prune removes them.
	Unreferenced     int   `json:"unreferenced"`
	UnreferencedSize int64 `json:"unreferencedSize"`
	// VolumesSize is the bytes of the Modal volumes kept in the store
	// (volumes/), which prune never removes.
	VolumesSize int64 `json:"volumesSize"`
	// LogsSize is the bytes of the build logs kept in the store (logs/,
	// the last 20 builds' whole output), which prune does not remove.
	LogsSize int64 `json:"logsSize"`
}

// PruneReport says what Prune removed.
type PruneReport struct {
	Entries []CacheEntry `json:"entries"` // build cache entries removed
	// Unreferenced counts the objects removed that no entry held.
	Unreferenced int `json:"unreferenced"`
	// Reclaimed is the bytes removed: records, blobs, snapshots, cache
	// mounts (apparent sizes).
	Reclaimed int64 `json:"reclaimed"`
}

// object is a blob, a committed snapshot, an image record or a metadata
// record.
type object struct {
	key     string
	size    int64
	holders int  // cache entries holding it
	rooted  bool // held by a named image or a live active snapshot
	depth   int  // snapshots: the length of the chain below, for removal order
}

// gcState is one scan of the store.
type gcState struct {
	s       *Store
	objs    map[string]*object
	entries []*CacheEntry
	images  []ImageUsage
	imgObjs map[string][]string // named image ID -> objects it holds
	chains  map[digest.Digest][]string
	scratch []string // dead processes' leftovers, relative to the root
	names   map[string]string
	volumes int64
}

const (
	blobKey  = "blob:"
	snapKey  = "snapshot:"
	imageKey = "image:"
	metaKey  = "metadata:"
)

// DiskUsage scans the store and says what uses its space. It reads only:
// callers hold the lock, shared (LockShared) or exclusive. It fails when a
// named image's record or manifest cannot be read, naming the image.
func (s *Store) DiskUsage() (Usage, error) {
	g, err := s.scan()
	if err != nil {
		return Usage{}, err
	}
	u := Usage{Images: g.images, VolumesSize: g.volumes, LogsSize: treeSize(filepath.Join(s.root, "logs"))}
	if u.Images == nil {
		u.Images = []ImageUsage{}
	}
	u.Cache = make([]CacheEntry, len(g.entries))
	for i, e := range g.entries {
		u.Cache[i] = *e
	}
	for _, o := range g.objs {
		switch {
		case o.rooted:
			u.ImagesSize += o.size
		case o.holders > 0:
			u.CacheSize += o.size
		default:
			u.Unreferenced++
			u.UnreferencedSize += o.size
		}
	}
	for _, e := range g.entries {
		u.CacheSize += e.ownBytes
	}
	for _, p := range g.scratch {
		u.Unreferenced++
		u.UnreferencedSize += treeSize(filepath.Join(s.root, p))
	}
	removed, freed := g.plan(PruneOptions{}, time.Now())
	for _, e := range removed {
		u.CacheReclaimable += e.ownBytes
	}
	for _, o := range freed {
		if o.holders > 0 {
			u.CacheReclaimable += o.size
		}
	}
	return u, nil
}

// Prune removes the build cache entries o chooses, then every blob,
// snapshot, image record and metadata record that neither a named image, a
// live active snapshot nor a remaining entry holds, and the leftovers of
// killed processes. Callers hold the store with LockPrune, so no build runs
// meanwhile and every image built before has its name.
//
// A prune cut short leaves a consistent store: records go first (cache
// entries, then image records), then the blobs and snapshots nobody names
// any more, children before their parents; at worst unreferenced content
// stays for the next prune. An entry whose record cannot be removed is kept
// with what it holds; the errors are joined and returned with the report of
// what was removed.
func (s *Store) Prune(o PruneOptions) (PruneReport, error) {
	if o.Until < 0 || o.KeepStorage < 0 {
		return PruneReport{}, fmt.Errorf("prune: negative until (%s) or keep-storage (%d): give a duration and a size of 0 or more", o.Until, o.KeepStorage)
	}
	g, err := s.scan()
	if err != nil {
		return PruneReport{}, err
	}
	removed, _ := g.plan(o, time.Now())
	var rep PruneReport
	var errs []error
	// 1. The entries' records: once they are gone, nothing names what
	// only they held.
	for _, e := range removed {
		size := e.ownBytes
		testHookRemove()
		if err := removeAll(s.root, e.own); err != nil {
			errs = append(errs, fmt.Errorf("prune: %s %s: %w", e.Kind, e.ID, err))
			continue
		}
		for _, k := range e.objs {
			g.objs[k].holders--
		}
		e.Size = size + g.freedBy(e)
		rep.Entries = append(rep.Entries, *e)
		rep.Reclaimed += size
	}
	// 2. Records of names that are gone: mounts and sources.
	errs = append(errs, g.dropStaleNames())
	// 3. What nothing holds: image records, metadata, blobs, snapshots
	// (children first).
	var free []*object
	heldBefore := map[string]bool{}
	for _, e := range g.entries {
		for _, k := range e.objs {
			heldBefore[k] = true
		}
	}
	for _, ob := range g.objs {
		if !ob.rooted && ob.holders == 0 {
			free = append(free, ob)
		}
	}
	order := map[string]int{imageKey: 0, metaKey: 1, blobKey: 2, snapKey: 3}
	sort.Slice(free, func(i, j int) bool {
		a, b := free[i], free[j]
		if oa, ob := order[kindOf(a.key)], order[kindOf(b.key)]; oa != ob {
			return oa < ob
		}
		if a.depth != b.depth {
			return a.depth > b.depth
		}
		return a.key < b.key
	})
	rechecked := false
	for _, ob := range free {
		if kindOf(ob.key) == snapKey && !rechecked {
			// A container started since the scan (snapbuild run takes
			// no lock) is mounted on a chain it recorded first.
			rechecked = true
			if err := g.rootActives(); err != nil {
				errs = append(errs, err)
				break
			}
		}
		if ob.rooted {
			continue
		}
		testHookRemove()
		if err := g.removeObject(ob); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.Reclaimed += ob.size
		if !heldBefore[ob.key] {
			rep.Unreferenced++
		}
	}
	// 4. Leftovers of killed processes (containers' state dirs).
	for _, p := range g.scratch {
		size := treeSize(filepath.Join(s.root, p))
		if err := os.RemoveAll(filepath.Join(s.root, p)); err != nil {
			errs = append(errs, fmt.Errorf("prune: %w", err))
			continue
		}
		rep.Reclaimed += size
		rep.Unreferenced++
	}
	return rep, errors.Join(errs...)
}

// testHookRemove runs before each removal of a prune; a test makes it
// panic to cut a prune short, as a kill would.
var testHookRemove = func() {}

func kindOf(key string) string { return key[:strings.IndexByte(key, ':')+1] }

// removeObject deletes one object from the store.
func (g *gcState) removeObject(ob *object) error {
	kind, id := kindOf(ob.key), ob.key[strings.IndexByte(ob.key, ':')+1:]
	var err error
	switch kind {
	case blobKey:
		err = g.s.blobs.Remove(digest.Digest(id))
	case snapKey:
		err = g.s.snaps.Remove(digest.Digest(id))
	case imageKey:
		err = removeAll(g.s.root, []string{filepath.Join("images", id+".json")})
	case metaKey:
		err = removeAll(g.s.root, []string{filepath.Join("metadata", id+".json")})
	}
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	return nil
}

// freedBy is what entry e held that nothing holds any more (after its
// holders were decremented).
func (g *gcState) freedBy(e *CacheEntry) int64 {
	var n int64
	for _, k := range e.objs {
		if ob := g.objs[k]; !ob.rooted && ob.holders == 0 {
			n += ob.size
		}
	}
	return n
}

// plan chooses the entries o removes and returns them with the objects
// that would then be held by nothing (including those nothing holds now).
// It changes nothing.
func (g *gcState) plan(o PruneOptions, now time.Time) (removed []*CacheEntry, freed []*object) {
	holders := make(map[string]int, len(g.objs))
	for k, ob := range g.objs {
		holders[k] = ob.holders
	}
	var cand []*CacheEntry
	for _, e := range g.entries {
		if !o.All && e.Shared {
			continue
		}
		if o.Until > 0 && now.Sub(e.LastUsed) < o.Until {
			continue
		}
		cand = append(cand, e)
	}
	if o.KeepStorage > 0 {
		// Oldest first, until the cache fits.
		sort.SliceStable(cand, func(i, j int) bool { return cand[i].LastUsed.Before(cand[j].LastUsed) })
		var cache int64
		for _, ob := range g.objs {
			if !ob.rooted && ob.holders > 0 {
				cache += ob.size
			}
		}
		for _, e := range g.entries {
			cache += e.ownBytes
		}
		n := 0
		for _, e := range cand {
			if cache <= o.KeepStorage {
				break
			}
			n++
			cache -= e.ownBytes
			for _, k := range e.objs {
				holders[k]--
				if ob := g.objs[k]; holders[k] == 0 && !ob.rooted {
					cache -= ob.size
				}
			}
		}
		cand = cand[:n]
	} else {
		for _, e := range cand {
			for _, k := range e.objs {
				holders[k]--
			}
		}
	}
	for k, ob := range g.objs {
		if !ob.rooted && holders[k] == 0 {
			freed = append(freed, ob)
		}
	}
	return cand, freed
}

// scan reads the store's records and content into a gcState.
func (s *Store) scan() (*gcState, error) {
	g := &gcState{s: s, objs: map[string]*object{}, imgObjs: map[string][]string{}, chains: map[digest.Digest][]string{}}
	if err := s.blobs.Walk(func(d digest.Digest, size int64) error {
		g.objs[blobKey+d.String()] = &object{key: blobKey + d.String(), size: size}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := s.snaps.Walk(func(id digest.Digest) error {
		k := snapKey + id.String()
		g.objs[k] = &object{key: k, size: treeSize(filepath.Dir(s.snaps.FS(id)))}
		return nil
	}); err != nil {
		return nil, err
	}
	for _, r := range []struct{ dir, key string }{{"images", imageKey}, {"metadata", metaKey}} {
		if err := eachJSON(filepath.Join(s.root, r.dir), func(name string, fi fs.FileInfo) error {
			g.objs[r.key+name] = &object{key: r.key + name, size: fi.Size()}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	for k, ob := range g.objs {
		if kindOf(k) == snapKey {
			ob.depth = len(g.chain(digest.Digest(k[len(snapKey):])))
		}
	}
	if err := g.roots(); err != nil {
		return nil, err
	}
	if err := g.scanEntries(); err != nil {
		return nil, err
	}
	for _, e := range g.entries {
		for _, p := range e.own {
			e.ownBytes += treeSize(filepath.Join(s.root, p))
		}
		e.Size = e.ownBytes
		for _, k := range e.objs {
			g.objs[k].holders++
			if !g.objs[k].rooted {
				e.Size += g.objs[k].size
			}
		}
		e.Shared = !e.dangling
		for _, k := range e.data {
			if !g.objs[k].rooted {
				e.Shared = false
			}
		}
	}
	sort.Slice(g.entries, func(i, j int) bool {
		a, b := g.entries[i], g.entries[j]
		if !a.LastUsed.Equal(b.LastUsed) {
			return a.LastUsed.After(b.LastUsed)
		}
		return a.Kind+a.ID < b.Kind+b.ID
	})
	g.volumes = treeSize(filepath.Join(s.root, "volumes"))
	return g, g.scanScratch()
}

// chain returns the object keys of snapshot id and its ancestors; a chain
// whose parent is missing ends there.
func (g *gcState) chain(id digest.Digest) []string {
	if id == "" {
		return nil
	}
	if c, ok := g.chains[id]; ok {
		return c
	}
	g.chains[id] = nil // a cycle in a corrupt store ends here
	k := snapKey + id.String()
	if _, ok := g.objs[k]; !ok {
		return nil
	}
	c := []string{k}
	if p, err := g.s.snaps.Parent(id); err == nil && p != "" {
		c = append(c, g.chain(p)...)
	}
	g.chains[id] = c
	return c
}

// present keeps the keys of objects that are in the store.
func (g *gcState) present(keys ...string) []string {
	var out []string
	for _, k := range keys {
		if _, ok := g.objs[k]; ok {
			out = append(out, k)
		}
	}
	return out
}

// imageObjects lists what image record r holds: the record, its manifest,
// config and layers, its snapshot chain and its metadata; data is the layers
// and snapshots among them. A manifest that cannot be read is an error.
func (g *gcState) imageObjects(r Image) (objs, data []string, err error) {
	data = g.chain(r.ChainID)
	objs = []string{imageKey + r.ID, blobKey + r.Manifest.Digest.String(), metaKey + r.Manifest.Digest.Encoded()}
	m, err := g.s.blobs.Manifest(r.Manifest.Digest)
	if err == nil {
		objs = append(objs, blobKey+m.Config.Digest.String())
		for _, l := range m.Layers {
			data = append(data, blobKey+l.Digest.String())
		}
	}
	data = g.present(data...)
	return append(g.present(objs...), data...), data, err
}

// roots marks what named images and live active snapshots hold.
func (g *gcState) roots() error {
	names, err := g.s.Names()
	if err != nil {
		return err
	}
	g.names = names
	byID := map[string][]string{}
	for n, id := range names {
		byID[id] = append(byID[id], n)
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	count := map[string]int{}
	for _, id := range ids {
		sort.Strings(byID[id])
		r, ok, err := g.s.Image(id)
		if err == nil && !ok {
			err = errors.New("its record is missing")
		}
		var keys []string
		if err == nil {
			keys, _, err = g.imageObjects(r)
		}
		if err != nil {
			return fmt.Errorf("image %s (%s): %w: remove the name with snapbuild rm, then prune", strings.Join(byID[id], ", "), id, err)
		}
		g.imgObjs[id] = keys
		for _, k := range keys {
			g.objs[k].rooted = true
			count[k]++
		}
	}
	for _, id := range ids {
		u := ImageUsage{ID: id, Names: byID[id]}
		for _, k := range g.imgObjs[id] {
			u.Size += g.objs[k].size
			if count[k] == 1 {
				u.Unique += g.objs[k].size
			}
		}
		g.images = append(g.images, u)
	}
	return g.rootActives()
}

// rootActives marks the chains active snapshots of live processes are
// mounted on; all snapshots when one of them does not say.
func (g *gcState) rootActives() error {
	parents, ok, err := g.s.snaps.ActiveParents()
	if err != nil {
		return err
	}
	for k, ob := range g.objs {
		if !ok && kindOf(k) == snapKey {
			ob.rooted = true // an active snapshot of unknown parent
		}
	}
	for _, p := range parents {
		for _, k := range g.chain(p) {
			g.objs[k].rooted = true
		}
	}
	return nil
}

// pulledBase is a from_registry base record (bases/registry-*.json), as the
// builder writes it.
type pulledBase struct {
	Ref     string `json:"ref"`
	ImageID string `json:"imageID"`
}

// solverRecord is one output of a solver cache record (worker/keys/), as
// the worker writes it.
type solverRecord struct {
	Chain  digest.Digest        `json:"chain,omitempty"`
	Layers []ocispec.Descriptor `json:"layers,omitempty"`
}

// readRecord decodes the record at rel (relative to the root) without
// changing its access time, which is its last use (see lastUse).
func (g *gcState) readRecord(rel string, v any) error {
	p := filepath.Join(g.s.root, rel)
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOATIME, 0)
	if err == unix.EPERM { // not the file's owner
		fd, err = unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return &fs.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	if err := json.NewDecoder(f).Decode(v); err != nil {
		return fmt.Errorf("store %s: %s is corrupt: %w", g.s.root, rel, err)
	}
	return nil
}

// scanEntries lists the build cache entries.
func (g *gcState) scanEntries() error {
	add := func(kind, id, desc, rel string, fi fs.FileInfo, data ...string) *CacheEntry {
		e := &CacheEntry{Kind: kind, ID: id, Description: desc, LastUsed: fi.ModTime(), own: []string{rel}}
		if kind == "step" || kind == "solver" {
			e.LastUsed = lastUse(fi) // a cache hit sets the access time
		}
		e.data = g.present(data...)
		e.objs = e.data
		g.entries = append(g.entries, e)
		return e
	}
	broken := func(kind, id, rel string, fi fs.FileInfo) {
		add(kind, id, "(unreadable record)", rel, fi).dangling = true
	}
	stepObjs := func(r Step) []string {
		if r.Empty {
			return nil
		}
		return append([]string{blobKey + r.Layer.Digest.String()}, g.chain(r.ChainID)...)
	}
	if err := eachJSON(filepath.Join(g.s.root, "steps"), func(name string, fi fs.FileInfo) error {
		rel := filepath.Join("steps", name+".json")
		var r Step
		if err := g.readRecord(rel, &r); err != nil {
			broken("step", name, rel, fi)
			return nil
		}
		add("step", name, r.Instruction, rel, fi, stepObjs(r)...)
		return nil
	}); err != nil {
		return err
	}
	if err := eachJSON(filepath.Join(g.s.root, "worker", "keys"), func(name string, fi fs.FileInfo) error {
		rel := filepath.Join("worker", "keys", name+".json")
		var recs []solverRecord
		if err := g.readRecord(rel, &recs); err != nil {
			broken("solver", name, rel, fi)
			return nil
		}
		var data []string
		for _, r := range recs {
			for _, l := range r.Layers {
				data = append(data, blobKey+l.Digest.String())
			}
			data = append(data, g.chain(r.Chain)...)
		}
		add("solver", name, "", rel, fi, data...)
		return nil
	}); err != nil {
		return err
	}
	baseImages := map[string]bool{}
	if err := eachJSON(filepath.Join(g.s.root, "bases"), func(name string, fi fs.FileInfo) error {
		rel := filepath.Join("bases", name+".json")
		var raw map[string]json.RawMessage
		if _, err := g.s.ReadJSON(rel, &raw); err != nil {
			broken("base", name, rel, fi)
			return nil
		}
		if _, ok := raw["imageID"]; ok {
			var b pulledBase
			if _, err := g.s.ReadJSON(rel, &b); err != nil {
				broken("base", name, rel, fi)
				return nil
			}
			e := add("base", name, b.Ref, rel, fi)
			if r, ok, err := g.s.Image(b.ImageID); err == nil && ok {
				if _, named := g.imgObjs[r.ID]; !named {
					baseImages[r.ID] = true
				}
				e.objs, e.data, _ = g.imageObjects(r)
			}
			return nil
		}
		var r Step
		if _, err := g.s.ReadJSON(rel, &r); err != nil {
			broken("base", name, rel, fi)
			return nil
		}
		add("base", name, r.Instruction, rel, fi, stepObjs(r)...)
		return nil
	}); err != nil {
		return err
	}
	// Image records no name points at (and no base record holds).
	if err := eachJSON(filepath.Join(g.s.root, "images"), func(id string, fi fs.FileInfo) error {
		if _, named := g.imgObjs[id]; named || baseImages[id] {
			return nil
		}
		e := &CacheEntry{Kind: "image", ID: id, LastUsed: fi.ModTime()}
		g.entries = append(g.entries, e)
		r, ok, err := g.s.Image(id)
		if err != nil || !ok {
			e.Description, e.dangling, e.objs = "(unreadable record)", true, g.present(imageKey+id)
			return nil
		}
		e.objs, e.data, _ = g.imageObjects(r)
		if r.Parent != "" {
			e.Description = "on " + r.Parent
		}
		return nil
	}); err != nil {
		return err
	}
	for _, d := range []struct{ kind, dir string }{{"cache-mount", "cache"}, {"package-cache", "pkgcache"}, {"file-hashes", "contenthash"}} {
		dir := filepath.Join(g.s.root, "worker", d.dir)
		ents, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("store %s: %w", g.s.root, err)
		}
		for _, e := range ents {
			if d.kind == "package-cache" && (!e.IsDir() || strings.HasPrefix(e.Name(), ".")) {
				continue // a cache's lock file, a directory being made
			}
			fi, err := e.Info()
			if err != nil {
				continue
			}
			add(d.kind, e.Name(), "", filepath.Join("worker", d.dir, e.Name()), fi).dangling = d.kind != "file-hashes"
		}
	}
	return nil
}

// scanScratch lists the state dirs of `snapbuild run` containers (run/<pid>)
// whose process is gone. The other scratch (tmp/, worker/tmp/, temporary
// blobs and snapshots) is LockExclusive's to clear.
func (g *gcState) scanScratch() error {
	ents, err := os.ReadDir(filepath.Join(g.s.root, "run"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store %s: %w", g.s.root, err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && pid > 0 && pid != os.Getpid() && processAlive(pid) {
			continue
		}
		g.scratch = append(g.scratch, filepath.Join("run", e.Name()))
	}
	return nil
}

func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || err == unix.EPERM
}

// dropStaleNames removes the runtime mounts (mounts.json) and sources
// (sources.json) recorded for names that no longer exist.
func (g *gcState) dropStaleNames() error {
	var errs []error
	for _, f := range []string{"mounts.json", "sources.json"} {
		m := map[string]json.RawMessage{}
		ok, err := g.s.ReadJSON(f, &m)
		if err != nil || !ok {
			errs = append(errs, err)
			continue
		}
		n := len(m)
		for name := range m {
			if _, ok := g.names[name]; !ok {
				delete(m, name)
			}
		}
		if len(m) != n {
			errs = append(errs, g.s.WriteJSON(f, m))
		}
	}
	return errors.Join(errs...)
}

// eachJSON calls fn with the name (without .json) and file info of every
// *.json file in dir; a missing dir has none.
func eachJSON(dir string, fn func(name string, fi fs.FileInfo) error) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() || strings.HasPrefix(name, ".") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		if err := fn(name, fi); err != nil {
			return err
		}
	}
	return nil
}

// removeAll removes the paths (relative to root) and everything below them.
func removeAll(root string, rels []string) error {
	var errs []error
	for _, r := range rels {
		errs = append(errs, os.RemoveAll(filepath.Join(root, r)))
	}
	return errors.Join(errs...)
}

// treeSize is the apparent size in bytes of the files (not directories) of
// the tree at p, or of the file p, each hard-linked file once; 0 when p does
// not exist.
func treeSize(p string) int64 {
	var n int64
	seen := map[[2]uint64]bool{}
	_ = filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			id := [2]uint64{st.Dev, st.Ino}
			if seen[id] {
				return nil
			}
			seen[id] = true
		}
		n += fi.Size()
		return nil
	})
	return n
}
