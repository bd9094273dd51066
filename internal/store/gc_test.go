package store

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/snapshot"
)

// fakeStore is a small store made without building: blobs, snapshots
// (written in the snapshot store's layout, without overlay mounts) and
// records.
type fakeStore struct {
	t *testing.T
	s *Store
}

// layer stores data as a layer blob.
func (f fakeStore) layer(data string) ocispec.Descriptor {
	f.t.Helper()
	d, err := f.s.Blobs().WriteBlob(ocispec.MediaTypeImageLayer, []byte(data))
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

// snapshot commits snapshot id on parent holding one file of size bytes.
func (f fakeStore) snapshot(id, parent digest.Digest, size int) {
	f.t.Helper()
	a, err := f.s.Snapshots().Prepare("")
	if err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.Upper, "file"), make([]byte, size), 0o644); err != nil {
		f.t.Fatal(err)
	}
	a.Parent = parent // the layout only: nothing is mounted
	if err := f.s.Snapshots().Commit(a, id); err != nil {
		f.t.Fatal(err)
	}
}

// image stores an image record with a manifest of layers on chain.
func (f fakeStore) image(id string, chain digest.Digest, layers ...ocispec.Descriptor) Image {
	f.t.Helper()
	cfg, err := f.s.Blobs().WriteJSON(ocispec.MediaTypeImageConfig, map[string]string{"id": id})
	if err != nil {
		f.t.Fatal(err)
	}
	m, err := f.s.Blobs().WriteJSON(ocispec.MediaTypeImageManifest, ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: layers})
	if err != nil {
		f.t.Fatal(err)
	}
	r := Image{ID: id, Manifest: m, ChainID: chain}
	if err := f.s.PutImage(r); err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f fakeStore) write(rel string, v any) {
	f.t.Helper()
	if err := os.MkdirAll(filepath.Join(f.s.Root(), filepath.Dir(rel)), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := f.s.WriteJSON(rel, v); err != nil {
		f.t.Fatal(err)
	}
}

func (f fakeStore) exists(rel string) bool {
	_, err := os.Stat(filepath.Join(f.s.Root(), rel))
	return err == nil
}

func chainOf(parent digest.Digest, l ocispec.Descriptor) digest.Digest {
	return snapshot.ChainID(parent, l.Digest) // the diffID does not matter here
}

func entryIDs(es []CacheEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Kind+" "+e.ID)
	}
	sort.Strings(out)
	return out
}

// world is a store after building "app" (base + layer 1), building "old"
// (base + layer 2) and removing the name "old", with the records a build
// leaves.
type world struct {
	fakeStore
	lB, l1, l2      ocispec.Descriptor
	cB, c1, c2      digest.Digest
	app, old        Image
	orphan          ocispec.Descriptor
	orphanSnap      digest.Digest
	deadRun         string
	steps           map[string]Step
	solverKeep      string
	solverDrop      string
	cacheMount      string
	fileHashes      string
	registryBaseRel string
}

func newWorld(t *testing.T) *world {
	w := &world{fakeStore: fakeStore{t, open(t, t.TempDir())}}
	w.lB, w.l1, w.l2 = w.layer("base layer"), w.layer("layer one"), w.layer("layer two")
	w.cB = chainOf("", w.lB)
	w.c1, w.c2 = chainOf(w.cB, w.l1), chainOf(w.cB, w.l2)
	w.snapshot(w.cB, "", 1000)
	w.snapshot(w.c1, w.cB, 100)
	w.snapshot(w.c2, w.cB, 5000)
	w.app = w.image("im-aaaaaaaaaaaaaaaaaaaaaa", w.c1, w.lB, w.l1)
	w.old = w.image("im-bbbbbbbbbbbbbbbbbbbbbb", w.c2, w.lB, w.l2)
	if err := w.s.SetName("app", w.app.ID); err != nil {
		t.Fatal(err)
	}
	w.write(filepath.Join("metadata", w.app.Manifest.Digest.Encoded()+".json"), map[string]string{"python": "3.12"})
	w.write(filepath.Join("metadata", w.old.Manifest.Digest.Encoded()+".json"), map[string]string{"python": "3.11"})
	w.steps = map[string]Step{
		"base":  {Key: "base", Instruction: "FROM debian", Layer: w.lB, DiffID: w.lB.Digest, ChainID: w.cB},
		"one":   {Key: "one", Instruction: "RUN one", Layer: w.l1, DiffID: w.l1.Digest, ChainID: w.c1},
		"two":   {Key: "two", Instruction: "RUN two", Layer: w.l2, DiffID: w.l2.Digest, ChainID: w.c2},
		"empty": {Key: "empty", Instruction: "RUN true", Empty: true},
	}
	// A step of a stage no image copied from: a chain of two snapshots
	// only its record holds.
	lD1, lD2 := w.layer("stage layer one"), w.layer("stage layer two")
	d1 := chainOf("", lD1)
	d2 := chainOf(d1, lD2)
	w.snapshot(d1, "", 10)
	w.snapshot(d2, d1, 10)
	w.steps["stage"] = Step{Key: "stage", Instruction: "FROM builder", Layer: lD1, DiffID: lD1.Digest, ChainID: d1}
	w.steps["deep"] = Step{Key: "deep", Instruction: "RUN make", Layer: lD2, DiffID: lD2.Digest, ChainID: d2}
	for _, r := range w.steps {
		if err := w.s.PutStep(r); err != nil {
			t.Fatal(err)
		}
	}
	w.solverKeep, w.solverDrop = strings.Repeat("1", 64), strings.Repeat("2", 64)
	w.write(filepath.Join("worker", "keys", w.solverKeep+".json"), []solverRecord{{Chain: w.c1, Layers: []ocispec.Descriptor{w.lB, w.l1}}})
	w.write(filepath.Join("worker", "keys", w.solverDrop+".json"), []solverRecord{{Chain: w.c2, Layers: []ocispec.Descriptor{w.lB, w.l2}}})
	w.cacheMount = strings.Repeat("3", 64)
	w.write(filepath.Join("worker", "cache", w.cacheMount, "apt", "pkg.deb"), "a cached package")
	// A package cache, its lock file and a directory a killed build was
	// making: only the cache is an entry.
	w.write(filepath.Join("worker", "pkgcache", "apt", "archives", "pkg.deb"), "a cached package")
	w.write(filepath.Join("worker", "pkgcache", "apt.lock"), "")
	w.write(filepath.Join("worker", "pkgcache", ".new-123", "x"), "")
	w.fileHashes = strings.Repeat("4", 32)
	w.write(filepath.Join("worker", "contenthash", w.fileHashes), "hashes")
	// The pulled base both images are built on.
	pulled := w.image("im-cccccccccccccccccccccc", w.cB, w.lB)
	w.registryBaseRel = filepath.Join("bases", "registry-x.json")
	w.write(w.registryBaseRel, pulledBase{Ref: "debian:bookworm", ImageID: pulled.ID})
	w.write("mounts.json", map[string]any{"app": []string{"/src"}, "old": []string{"/gone"}})
	w.orphan = w.layer("a layer of a killed build")
	w.orphanSnap = chainOf("", w.orphan)
	w.snapshot(w.orphanSnap, "", 10)
	// The state of a `snapbuild run` whose process is gone.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	w.deadRun = filepath.Join("run", strconv.Itoa(cmd.Process.Pid))
	w.write(filepath.Join(w.deadRun, "state.json"), "{}")
	return w
}

// checkImage fails unless everything image r needs is in the store.
func (w *world) checkImage(r Image, layers ...ocispec.Descriptor) {
	w.t.Helper()
	if _, ok, err := w.s.Image(r.ID); !ok || err != nil {
		w.t.Errorf("image record %s is gone (%v)", r.ID, err)
	}
	for _, l := range append(layers, r.Manifest) {
		if !w.s.Blobs().Has(l.Digest) {
			w.t.Errorf("blob %s of image %s is gone", l.Digest, r.ID)
		}
	}
	lowers, err := w.s.Snapshots().Lowers(r.ChainID)
	if err != nil || len(lowers) == 0 {
		w.t.Errorf("snapshot chain of image %s: %v (%d lowers)", r.ID, err, len(lowers))
	}
}

func TestPruneDangling(t *testing.T) {
	w := newWorld(t)
	before, err := w.s.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := w.s.Prune(PruneOptions{})
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	want := []string{"cache-mount " + w.cacheMount, "image " + w.old.ID, "package-cache apt", "solver " + w.solverDrop, "step deep", "step stage", "step two"}
	if got := entryIDs(rep.Entries); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Prune removed entries\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if rep.Reclaimed != before.CacheReclaimable+before.UnreferencedSize {
		t.Errorf("Prune reclaimed %d bytes, DiskUsage said %d (cache) + %d (unreferenced)", rep.Reclaimed, before.CacheReclaimable, before.UnreferencedSize)
	}
	// app and what rebuilding it needs stay.
	w.checkImage(w.app, w.lB, w.l1)
	for _, key := range []string{"base", "one", "empty"} {
		if r, ok, err := w.s.Step(key); !ok || err != nil || !w.s.StepUsable(r) {
			t.Errorf("step %q: kept %v, usable %v (%v); want a usable record", key, ok, w.s.StepUsable(r), err)
		}
	}
	for _, rel := range []string{
		filepath.Join("worker", "keys", w.solverKeep+".json"),
		filepath.Join("worker", "contenthash", w.fileHashes),
		filepath.Join("metadata", w.app.Manifest.Digest.Encoded()+".json"),
		w.registryBaseRel, // app holds its files: an offline rebuild reuses it
		filepath.Join("images", "im-cccccccccccccccccccccc.json"),
	} {
		if !w.exists(rel) {
			t.Errorf("%s was removed", rel)
		}
	}
	// The removed image's content, the orphans and the dead process's
	// state are gone.
	if w.s.Blobs().Has(w.l2.Digest) || w.s.Blobs().Has(w.old.Manifest.Digest) || w.s.Blobs().Has(w.orphan.Digest) {
		t.Error("the blobs of the removed image or the orphan blob are still there")
	}
	if w.s.Snapshots().Exists(w.c2) || w.s.Snapshots().Exists(w.orphanSnap) {
		t.Error("the removed image's snapshot or the orphan snapshot is still there")
	}
	for _, rel := range []string{
		filepath.Join("steps", "two.json"),
		filepath.Join("images", w.old.ID+".json"),
		filepath.Join("metadata", w.old.Manifest.Digest.Encoded()+".json"),
		filepath.Join("worker", "cache", w.cacheMount),
		filepath.Join("worker", "pkgcache", "apt"),
		w.deadRun,
	} {
		if w.exists(rel) {
			t.Errorf("%s is still there", rel)
		}
	}
	var mounts map[string]any
	if _, err := w.s.ReadJSON("mounts.json", &mounts); err != nil || len(mounts) != 1 || mounts["app"] == nil {
		t.Errorf("mounts.json = %v (%v), want only app's", mounts, err)
	}
	after, err := w.s.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	if after.CacheReclaimable != 0 || after.Unreferenced != 0 || after.ImagesSize != before.ImagesSize {
		t.Errorf("DiskUsage after prune: reclaimable %d, unreferenced %d, images %d bytes (before: %d); want 0, 0, unchanged",
			after.CacheReclaimable, after.Unreferenced, after.ImagesSize, before.ImagesSize)
	}
	// A second prune finds nothing.
	if rep, err := w.s.Prune(PruneOptions{}); err != nil || len(rep.Entries) != 0 || rep.Reclaimed != 0 {
		t.Errorf("second Prune = %+v, %v; want nothing removed", rep, err)
	}
}

func TestPruneAll(t *testing.T) {
	w := newWorld(t)
	before, err := w.s.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.s.Prune(PruneOptions{All: true}); err != nil {
		t.Fatalf("Prune(All): %v", err)
	}
	w.checkImage(w.app, w.lB, w.l1)
	if w.exists(filepath.Join("images", "im-cccccccccccccccccccccc.json")) {
		t.Error("prune --all kept the pulled base's image record")
	}
	for _, dir := range []string{"steps", "bases", filepath.Join("worker", "keys"), filepath.Join("worker", "cache"), filepath.Join("worker", "contenthash")} {
		if ents, _ := os.ReadDir(filepath.Join(w.s.Root(), dir)); len(ents) != 0 {
			t.Errorf("%s/ still has %d entries after prune --all", dir, len(ents))
		}
	}
	after, err := w.s.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Cache) != 0 || after.CacheSize != 0 || after.ImagesSize != before.ImagesSize {
		t.Errorf("DiskUsage after prune --all: %d entries, %d bytes of cache, images %d bytes (before %d)", len(after.Cache), after.CacheSize, after.ImagesSize, before.ImagesSize)
	}
	if len(after.Images) != 1 || after.Images[0].ID != w.app.ID || after.Images[0].Names[0] != "app" || after.Images[0].Size != after.ImagesSize {
		t.Errorf("DiskUsage images = %+v, want app alone, holding %d bytes", after.Images, after.ImagesSize)
	}
}

func TestPruneUntil(t *testing.T) {
	w := newWorld(t)
	old := time.Now().Add(-48 * time.Hour)
	// Only the removed image's own step is old; its solver record and
	// image record were used just now.
	if err := os.Chtimes(filepath.Join(w.s.Root(), "steps", "two.json"), old, old); err != nil {
		t.Fatal(err)
	}
	rep, err := w.s.Prune(PruneOptions{Until: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got := entryIDs(rep.Entries); len(got) != 1 || got[0] != "step two" {
		t.Errorf("Prune(until=24h) removed %v, want [step two]", got)
	}
	// The solver record still holds layer two and its snapshot.
	if !w.s.Blobs().Has(w.l2.Digest) || !w.s.Snapshots().Exists(w.c2) {
		t.Error("Prune(until=24h) removed data a recent solver record holds")
	}
	if w.s.Blobs().Has(w.orphan.Digest) {
		t.Error("Prune(until=24h) kept an unreferenced blob")
	}
}

func TestPruneKeepStorage(t *testing.T) {
	w := newWorld(t)
	// Oldest first: the cache mount, then step two, then the rest.
	for i, rel := range []string{filepath.Join("worker", "cache", w.cacheMount), filepath.Join("steps", "two.json")} {
		tm := time.Now().Add(time.Duration(-10+i) * time.Hour)
		if err := os.Chtimes(filepath.Join(w.s.Root(), rel), tm, tm); err != nil {
			t.Fatal(err)
		}
	}
	u, err := w.s.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	// Keep all but a byte of the cache: the oldest entry goes, no more.
	rep, err := w.s.Prune(PruneOptions{KeepStorage: u.CacheSize - 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := entryIDs(rep.Entries); len(got) != 1 || got[0] != "cache-mount "+w.cacheMount {
		t.Errorf("Prune(keep %d of %d bytes) removed %v, want the cache mount alone", u.CacheSize-1, u.CacheSize, got)
	}
	if !w.exists(filepath.Join("steps", "two.json")) {
		t.Error("step two went though the cache fit")
	}
	// A limit no dangling entry can reach removes them all, and never a
	// shared one.
	if _, err := w.s.Prune(PruneOptions{KeepStorage: 1}); err != nil {
		t.Fatal(err)
	}
	if w.exists(filepath.Join("steps", "two.json")) || !w.exists(filepath.Join("steps", "one.json")) {
		t.Error("Prune(keep 1 byte) should remove step two and keep step one (shared with app)")
	}
}

func TestPruneKeepsActiveChains(t *testing.T) {
	w := newWorld(t)
	if err := w.s.SetName("app", ""); err != nil {
		t.Fatal(err)
	}
	// A live process (a running container) has an active snapshot on c1.
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	dir := filepath.Join(w.s.Root(), "snapshots", ".tmp", "active-"+strconv.Itoa(sleep.Process.Pid)+"-1")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "parent"), []byte(w.c1.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := w.s.Prune(PruneOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	if !w.s.Snapshots().Exists(w.c1) || !w.s.Snapshots().Exists(w.cB) {
		t.Error("Prune removed the chain a live active snapshot is mounted on")
	}
	if w.s.Snapshots().Exists(w.c2) {
		t.Error("Prune kept a snapshot nothing holds")
	}
	// Once the process is gone, the chain goes too.
	sleep.Process.Kill()
	sleep.Wait()
	if _, err := w.s.Prune(PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	if w.s.Snapshots().Exists(w.c1) {
		t.Error("Prune kept the chain of a dead process's active snapshot")
	}
}

func TestPruneRefusesBrokenNamedImage(t *testing.T) {
	w := newWorld(t)
	if err := os.Remove(filepath.Join(w.s.Root(), "images", w.app.ID+".json")); err != nil {
		t.Fatal(err)
	}
	_, err := w.s.Prune(PruneOptions{All: true})
	if err == nil || !strings.Contains(err.Error(), "image app ("+w.app.ID+"): its record is missing: remove the name with snapbuild rm") {
		t.Fatalf("Prune with a dangling name = %v, want an error naming app", err)
	}
	// Nothing was removed.
	if !w.exists(filepath.Join("steps", "two.json")) || !w.s.Blobs().Has(w.orphan.Digest) {
		t.Error("a refused prune removed something")
	}
	if _, err := w.s.Prune(PruneOptions{Until: -time.Hour}); err == nil {
		t.Error("Prune(until<0) = nil error")
	}
}

func TestStepMarksUse(t *testing.T) {
	w := newWorld(t)
	p := filepath.Join(w.s.Root(), "steps", "one.json")
	old := time.Now().Add(-72 * time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := w.s.Step("one"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	// The use is the access time; the modification time stays (a dry
	// run changes no record).
	if !fi.ModTime().Equal(old) {
		t.Errorf("Step(one) changed the record's modification time to %s", fi.ModTime())
	}
	if u := lastUse(fi); time.Since(u) > time.Minute {
		t.Errorf("Step(one) left the record's last use at %s, want now", u)
	}
	// A prune of what was unused for a day keeps it.
	if err := w.s.SetName("app", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := w.s.Prune(PruneOptions{All: true, Until: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if !w.exists(filepath.Join("steps", "one.json")) {
		t.Error("Prune(until=24h) removed a step record used just now")
	}
}

func TestDiskUsage(t *testing.T) {
	w := newWorld(t)
	logs := filepath.Join(w.s.Root(), "logs")
	if err := os.MkdirAll(logs, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a.log", "b.log"} {
		if err := os.WriteFile(filepath.Join(logs, n), make([]byte, 3000), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	u, err := w.s.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Images) != 1 || u.Images[0].ID != w.app.ID {
		t.Fatalf("Images = %+v, want app alone", u.Images)
	}
	// app holds the base snapshot (1000 bytes of file) and layer one's
	// (100), besides blobs and records.
	if u.ImagesSize < 1100 || u.Images[0].Unique != u.ImagesSize {
		t.Errorf("ImagesSize = %d, app's unique size %d; want >= 1100 and equal", u.ImagesSize, u.Images[0].Unique)
	}
	byID := map[string]CacheEntry{}
	for _, e := range u.Cache {
		byID[e.Kind+" "+e.ID] = e
	}
	if e := byID["step two"]; e.Shared || e.Size < 5000 || e.Description != "RUN two" {
		t.Errorf("step two = %+v, want dangling, >= 5000 bytes (its snapshot), described", e)
	}
	if e := byID["step one"]; !e.Shared {
		t.Errorf("step one = %+v, want shared with app", e)
	}
	if e := byID["cache-mount "+w.cacheMount]; e.Shared || e.Size != int64(len(`"a cached package"`)+1) {
		t.Errorf("cache mount = %+v, want dangling", e)
	}
	if e := byID["package-cache apt"]; e.Shared || e.Size != int64(len(`"a cached package"`)+1) {
		t.Errorf("package cache = %+v, want dangling, the size of its file", e)
	}
	for id := range byID {
		if strings.HasPrefix(id, "package-cache ") && id != "package-cache apt" {
			t.Errorf("entry %s: a lock file or a directory being made is no package cache", id)
		}
	}
	if u.CacheReclaimable < 5000 || u.CacheReclaimable > u.CacheSize {
		t.Errorf("CacheReclaimable = %d, CacheSize = %d; want 5000 <= reclaimable <= size", u.CacheReclaimable, u.CacheSize)
	}
	// Unreferenced: the orphan blob and snapshot, the dead run's state.
	if u.Unreferenced != 3 {
		t.Errorf("Unreferenced = %d, want 3", u.Unreferenced)
	}
	// The build logs are counted apart, and not in what prune frees.
	if u.LogsSize != 6000 {
		t.Errorf("LogsSize = %d, want 6000 (two logs of 3000 bytes)", u.LogsSize)
	}
	if _, err := w.s.Prune(PruneOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	if !w.exists(filepath.Join("logs", "a.log")) {
		t.Error("Prune(All) removed a build log")
	}
	b, err := json.Marshal(u)
	if err != nil || !strings.Contains(string(b), `"cacheReclaimable"`) || !strings.Contains(string(b), `"logsSize":6000`) {
		t.Errorf("Usage as JSON: %s, %v", b, err)
	}
}

// storeFiles lists the files and directories under the store root.
func storeFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, rel)
		return nil
	}))
	sort.Strings(out)
	return out
}

// consistent fails unless every record in the store names content that is
// there: the named images, the step and solver records, the image records,
// and every committed snapshot's chain.
func (w *world) consistent(when string) {
	w.t.Helper()
	if err := w.s.Snapshots().Walk(func(id digest.Digest) error {
		_, err := w.s.Snapshots().Lowers(id)
		return err
	}); err != nil {
		w.t.Errorf("%s: a snapshot's chain is broken: %v", when, err)
	}
	ents, _ := os.ReadDir(filepath.Join(w.s.Root(), "steps"))
	for _, e := range ents {
		r, ok, err := w.s.Step(strings.TrimSuffix(e.Name(), ".json"))
		if !ok || err != nil || !w.s.StepUsable(r) {
			w.t.Errorf("%s: step record %s is not usable (%v)", when, e.Name(), err)
		}
	}
	ents, _ = os.ReadDir(filepath.Join(w.s.Root(), "worker", "keys"))
	for _, e := range ents {
		var recs []solverRecord
		if _, err := w.s.ReadJSON(filepath.Join("worker", "keys", e.Name()), &recs); err != nil {
			w.t.Fatal(err)
		}
		for _, r := range recs {
			if !w.s.Snapshots().Exists(r.Chain) {
				w.t.Errorf("%s: solver record %s names the missing snapshot %s", when, e.Name(), r.Chain)
			}
			for _, l := range r.Layers {
				if !w.s.Blobs().Has(l.Digest) {
					w.t.Errorf("%s: solver record %s names the missing blob %s", when, e.Name(), l.Digest)
				}
			}
		}
	}
	ents, _ = os.ReadDir(filepath.Join(w.s.Root(), "images"))
	for _, e := range ents {
		r, ok, err := w.s.Image(strings.TrimSuffix(e.Name(), ".json"))
		if !ok || err != nil {
			w.t.Fatalf("%s: image record %s: %v", when, e.Name(), err)
		}
		m, err := w.s.Blobs().Manifest(r.Manifest.Digest)
		if err != nil {
			w.t.Errorf("%s: image record %s: %v", when, r.ID, err)
			continue
		}
		w.checkImage(r, append(m.Layers, m.Config)...)
	}
	w.checkImage(w.app, w.lB, w.l1)
}

// TestPruneCutShort cuts a prune short before each of its removals, as a
// kill would, and checks that the store stays consistent and that the next
// prune ends where an uninterrupted one does.
func TestPruneCutShort(t *testing.T) {
	full := newWorld(t)
	removals := 0
	testHookRemove = func() { removals++ }
	defer func() { testHookRemove = func() {} }()
	if _, err := full.s.Prune(PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	want := storeFiles(t, full.s.Root())
	if removals < 10 {
		t.Fatalf("the prune made %d removals, want at least 10 for this test to mean something", removals)
	}
	for n := 0; n < removals; n++ {
		w := newWorld(t)
		calls := 0
		testHookRemove = func() {
			if calls == n {
				panic("killed")
			}
			calls++
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Fatalf("prune cut before removal %d: ran to its end", n)
				}
			}()
			w.s.Prune(PruneOptions{})
		}()
		testHookRemove = func() {}
		w.consistent("prune killed before removal " + strconv.Itoa(n))
		if _, err := w.s.Prune(PruneOptions{}); err != nil {
			t.Fatalf("the prune after one killed before removal %d: %v", n, err)
		}
		w.consistent("the prune after one killed before removal " + strconv.Itoa(n))
		got := storeFiles(t, w.s.Root())
		// The stores differ only in their temporary dir's name.
		if len(got) != len(want) {
			t.Errorf("killed before removal %d, then pruned: %d paths in the store, an uninterrupted prune leaves %d", n, len(got), len(want))
		}
	}
}

// TestPruneKeepsChainsMountedMeanwhile: a container started after the
// prune's scan (snapbuild run takes no lock) keeps the chain it records.
func TestPruneKeepsChainsMountedMeanwhile(t *testing.T) {
	w := newWorld(t)
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	started := false
	testHookRemove = func() {
		if started {
			return
		}
		started = true
		dir := filepath.Join(w.s.Root(), "snapshots", ".tmp", "active-"+strconv.Itoa(sleep.Process.Pid)+"-1")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "parent"), []byte(w.c2.String()+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	defer func() { testHookRemove = func() {} }()
	if _, err := w.s.Prune(PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	if !started {
		t.Fatal("the prune removed nothing")
	}
	if !w.s.Snapshots().Exists(w.c2) {
		t.Error("Prune removed the chain of an active snapshot made after its scan")
	}
	if w.s.Blobs().Has(w.l2.Digest) {
		t.Error("Prune kept layer two's blob, which no record names")
	}
}
