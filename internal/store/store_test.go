package store

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

func open(t *testing.T, root string) *Store {
	t.Helper()
	s, err := Open(root)
	if err != nil {
		t.Fatalf("Open(%s): %v", root, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenLayout(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if s.Root() != dir {
		t.Errorf("Root() = %s, want %s", s.Root(), dir)
	}
	for _, d := range []string{"steps", "bases", "images", "tmp", "blobs/sha256", "snapshots"} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("store lacks %s/: %v", d, err)
		}
	}
	if s.Blobs().Root() != dir {
		t.Errorf("Blobs().Root() = %s, want %s", s.Blobs().Root(), dir)
	}
	mode, err := os.ReadFile(filepath.Join(dir, "mode"))
	if err != nil {
		t.Fatal(err)
	}
	if m := string(mode); m != "root\n" && m != "rootless\n" {
		t.Errorf("mode file = %q, want \"root\\n\" or \"rootless\\n\"", mode)
	}
	// Opening again finds the same mode, and a relative root is made
	// absolute.
	t.Chdir(filepath.Dir(dir))
	if s2 := open(t, filepath.Base(dir)); s2.Root() != dir {
		t.Errorf("Open(%q).Root() = %s, want %s", filepath.Base(dir), s2.Root(), dir)
	}
	if _, err := Open(""); err == nil {
		t.Error(`Open("") = nil error, want one`)
	}
}

func TestCheckMode(t *testing.T) {
	dir := t.TempDir()
	if err := CheckMode(dir, true); err != nil {
		t.Fatalf("CheckMode on a new store: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "mode")); string(b) != "rootless\n" {
		t.Errorf("mode file = %q, want \"rootless\\n\"", b)
	}
	if err := CheckMode(dir, true); err != nil {
		t.Errorf("CheckMode(same mode) = %v", err)
	}
	want := "store " + dir + " was made by a rootless snapbuild and cannot be used as root: use another --root"
	if err := CheckMode(dir, false); err == nil || err.Error() != want {
		t.Errorf("CheckMode(other mode) = %v, want %q", err, want)
	}

	dir = t.TempDir()
	if err := CheckMode(dir, false); err != nil {
		t.Fatal(err)
	}
	want = "store " + dir + " was made by a root snapbuild and cannot be used rootless: use another --root"
	if err := CheckMode(dir, true); err == nil || err.Error() != want {
		t.Errorf("CheckMode(other mode) = %v, want %q", err, want)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("CheckMode left more than the mode file: %v", ents)
	}
}

// TestRecordsOnDisk pins the JSON of the records: stores written by earlier
// versions must stay readable, and written records readable by them.
func TestRecordsOnDisk(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	step := Step{
		Key:         strings.Repeat("a", 64),
		Instruction: "RUN echo hi",
		Layer: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerZstd,
			Digest: digest.FromString("layer"), Size: 3},
		DiffID:  digest.FromString("diff"),
		ChainID: digest.FromString("chain"),
		Python:  "3.11.9",
	}
	if err := s.PutStep(step); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "steps", step.Key+".json"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "key": "` + step.Key + `",
  "instruction": "RUN echo hi",
  "layer": {
    "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
    "digest": "` + step.Layer.Digest.String() + `",
    "size": 3
  },
  "diffID": "` + step.DiffID.String() + `",
  "chainID": "` + step.ChainID.String() + `",
  "python": "3.11.9"
}
`
	if string(b) != want {
		t.Errorf("steps/%s.json =\n%s\nwant\n%s", step.Key, b, want)
	}
	got, ok, err := s.Step(step.Key)
	if err != nil || !ok || !reflect.DeepEqual(got, step) {
		t.Errorf("Step(%s) = %+v, %v, %v; want %+v", step.Key, got, ok, err, step)
	}
	if _, ok, err := s.Step(strings.Repeat("b", 64)); ok || err != nil {
		t.Errorf("Step(missing) = %v, %v; want false, nil", ok, err)
	}

	// An empty step keeps no layer: "layer" is left out (omitzero).
	empty := Step{Key: strings.Repeat("c", 64), Instruction: "ENV A=1", Empty: true}
	if err := s.PutStep(empty); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(filepath.Join(dir, "steps", empty.Key+".json"))
	if want := "{\n  \"key\": \"" + empty.Key + "\",\n  \"instruction\": \"ENV A=1\",\n  \"empty\": true\n}\n"; string(b) != want {
		t.Errorf("empty step record =\n%s\nwant\n%s", b, want)
	}

	// An image record as an earlier version wrote it.
	id := "im-0123456789abcdefghijkl"
	old := `{"id":"` + id + `","manifest":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` +
		digest.FromString("m").String() + `","size":7},"chainID":"` + digest.FromString("c").String() +
		`","shell":["/bin/sh","-c"],"healthcheck":{"Test":["CMD","true"],"Interval":1000000000},"parent":"im-x"}`
	if err := os.WriteFile(filepath.Join(dir, "images", id+".json"), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	img, ok, err := s.Image(id)
	if err != nil || !ok {
		t.Fatalf("Image(%s) = %v, %v", id, ok, err)
	}
	if img.ID != id || img.Manifest.Digest != digest.FromString("m") || img.Manifest.Size != 7 ||
		img.ChainID != digest.FromString("c") || !reflect.DeepEqual(img.Shell, []string{"/bin/sh", "-c"}) ||
		img.Health == nil || !reflect.DeepEqual(img.Health.Test, []string{"CMD", "true"}) ||
		img.Health.Interval != time.Second || img.Parent != "im-x" {
		t.Errorf("Image(%s) = %+v", id, img)
	}
	// Written back, it reads the same.
	if err := s.PutImage(img); err != nil {
		t.Fatal(err)
	}
	if again, _, err := s.Image(id); err != nil || !reflect.DeepEqual(again, img) {
		t.Errorf("Image after PutImage = %+v, %v; want %+v", again, err, img)
	}
}

func TestReadJSON(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	var v map[string]int
	if ok, err := s.ReadJSON("bases/none.json", &v); ok || err != nil {
		t.Errorf("ReadJSON(missing) = %v, %v; want false, nil", ok, err)
	}
	if err := s.WriteJSON("bases/x.json", map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.ReadJSON("bases/x.json", &v); !ok || err != nil || v["a"] != 1 {
		t.Errorf("ReadJSON = %v, %v, %v", v, ok, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "names.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "store " + dir + ": names.json is corrupt: "
	if _, err := s.Names(); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Names() on a corrupt names.json = %v, want an error starting %q", err, want)
	}
	if _, err := s.Resolve("x"); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Resolve on a corrupt names.json = %v, want an error starting %q", err, want)
	}
}

func TestUsable(t *testing.T) {
	s := open(t, t.TempDir())
	lay, err := s.Blobs().WriteBlob(ocispec.MediaTypeImageLayerZstd, []byte("not really a layer"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Snapshots().Prepare("")
	if err != nil {
		t.Fatal(err)
	}
	chain := digest.FromString("chain")
	if err := s.Snapshots().Commit(a, chain); err != nil {
		t.Fatal(err)
	}
	missing := digest.FromString("missing")
	for _, c := range []struct {
		step Step
		want bool
	}{
		{Step{Empty: true}, true},
		{Step{Layer: lay, ChainID: chain}, true},
		{Step{Layer: lay, ChainID: missing}, false},
		{Step{Layer: ocispec.Descriptor{Digest: missing}, ChainID: chain}, false},
	} {
		if got := s.StepUsable(c.step); got != c.want {
			t.Errorf("StepUsable(%+v) = %v, want %v", c.step, got, c.want)
		}
	}
	for _, c := range []struct {
		chain digest.Digest
		want  bool
	}{{"", true}, {chain, true}, {missing, false}} {
		if got := s.ImageUsable(Image{ChainID: c.chain}); got != c.want {
			t.Errorf("ImageUsable(chain %q) = %v, want %v", c.chain, got, c.want)
		}
	}
}

func TestNames(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	a, b := "im-aaaaaaaaaaaaaaaaaaaaaa", "im-bbbbbbbbbbbbbbbbbbbbbb"
	for _, id := range []string{a, b} {
		if err := s.PutImage(Image{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, names, sources map[string]string) {
		t.Helper()
		if got, err := s.Names(); err != nil || !reflect.DeepEqual(got, names) {
			t.Errorf("%s: Names() = %v, %v; want %v", what, got, err, names)
		}
		if got, err := s.Sources(); err != nil || !reflect.DeepEqual(got, sources) {
			t.Errorf("%s: Sources() = %v, %v; want %v", what, got, err, sources)
		}
	}
	check("new store", map[string]string{}, map[string]string{})
	if err := s.SetNameFrom("p:app", a, "/src/app.py"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetName("ubuntu:22.04", b); err != nil {
		t.Fatal(err)
	}
	check("named", map[string]string{"p:app": a, "ubuntu:22.04": b}, map[string]string{"p:app": "/src/app.py"})
	// Named again without a source, the name loses its source.
	if err := s.SetName("p:app", b); err != nil {
		t.Fatal(err)
	}
	check("renamed", map[string]string{"p:app": b, "ubuntu:22.04": b}, map[string]string{})
	if err := s.SetNameFrom("p:app", a, "/src/app.py"); err != nil {
		t.Fatal(err)
	}
	// Removing a name removes its source.
	if err := s.SetNameFrom("p:app", "", "/src/app.py"); err != nil {
		t.Fatal(err)
	}
	check("removed", map[string]string{"ubuntu:22.04": b}, map[string]string{})

	// Resolve: by ID, by name, by a registry reference spelled otherwise.
	for ref, want := range map[string]string{
		a: a, b: b, "ubuntu:22.04": b,
		"docker.io/library/ubuntu:22.04":       b,
		"index.docker.io/library/ubuntu:22.04": b,
	} {
		if r, err := s.Resolve(ref); err != nil || r.ID != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", ref, r.ID, err, want)
		}
	}
	wantErr := `no image "ubuntu:24.04" in store ` + dir + ` (its names: ubuntu:22.04): build it first, or pass --root`
	if _, err := s.Resolve("ubuntu:24.04"); err == nil || err.Error() != wantErr {
		t.Errorf("Resolve(unknown) = %v, want %q", err, wantErr)
	}
	// A well-formed ID that is not in the store is not found by ID.
	c := "im-cccccccccccccccccccccc"
	if _, err := s.Resolve(c); err == nil || !strings.HasPrefix(err.Error(), `no image "`+c+`" in store `) {
		t.Errorf("Resolve(%s) = %v", c, err)
	}
	// A name pointing at a missing record says so.
	if err := s.SetName("gone", c); err != nil {
		t.Fatal(err)
	}
	wantErr = `image "gone" names ` + c + `, which is missing from store ` + dir
	if _, err := s.Resolve("gone"); err == nil || err.Error() != wantErr {
		t.Errorf("Resolve(gone) = %v, want %q", err, wantErr)
	}
	// Image refuses what is not an ID (no path outside images/ is read).
	if _, ok, err := s.Image("../names"); ok || err != nil {
		t.Errorf("Image(\"../names\") = %v, %v; want false, nil", ok, err)
	}

	empty := open(t, t.TempDir())
	wantErr = `no image "x" in store ` + empty.Root() + ` (it has no named images): build it first, or pass --root`
	if _, err := empty.Resolve("x"); err == nil || err.Error() != wantErr {
		t.Errorf("Resolve on an empty store = %v, want %q", err, wantErr)
	}
}

func TestCanonicalRef(t *testing.T) {
	for ref, want := range map[string]string{
		"ubuntu:22.04":              "index.docker.io/library/ubuntu:22.04",
		"ubuntu":                    "index.docker.io/library/ubuntu:latest",
		"localhost:5000/x/y:1":      "localhost:5000/x/y:1",
		"docker://ubuntu:22.04":     "",
		"im-aaaaaaaaaaaaaaaaaaaaaa": "",
		"oci:/tmp/layout:tag":       "",
		"docker-archive:/tmp/x.tar": "",
		"Not A Reference":           "",
	} {
		if got := CanonicalRef(ref); got != want {
			t.Errorf("CanonicalRef(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestValidImageID(t *testing.T) {
	for _, good := range []string{"im-0123456789abcdefghijkl", "im-ABCDEFGHIJKLMNOPQRSTUV"} {
		if !ValidImageID(good) {
			t.Errorf("ValidImageID(%q) = false", good)
		}
	}
	for _, bad := range []string{"", "im-", "im-abc", "im-0123456789abcdefghijk!", "xx-0123456789abcdefghijkl", "im-0123456789abcdefghijklm", "im-../../../../../etc/pas"} {
		if ValidImageID(bad) {
			t.Errorf("ValidImageID(%q) = true", bad)
		}
	}
}

// TestLock checks the lock between two Stores on one root, as between two
// processes (flock(2) locks belong to the open file).
func TestLock(t *testing.T) {
	dir := t.TempDir()
	s1, s2 := open(t, dir), open(t, dir)
	if err := s1.LockShared(); err != nil {
		t.Fatal(err)
	}
	if err := s2.LockShared(); err != nil {
		t.Fatalf("a second reader: %v", err)
	}
	s2.Unlock()

	// A build waits for the reader, then clears tmp/ and the worker's
	// scratch, and keeps the worker's cache mounts.
	scratch := filepath.Join(dir, "tmp", "left-by-a-killed-build")
	workerTmp := filepath.Join(dir, "worker", "tmp", "local-1")
	workerRun := filepath.Join(dir, "worker", "run", "snapbuild-w1-1")
	cacheMount := filepath.Join(dir, "worker", "cache", "kept")
	for _, d := range []string{scratch, workerTmp, workerRun, cacheMount} {
		if err := os.MkdirAll(filepath.Join(d, "sub"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- s2.LockExclusive() }()
	select {
	case err := <-done:
		t.Fatalf("LockExclusive did not wait for the reader: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	s1.Unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("LockExclusive: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("LockExclusive still waits after the reader unlocked")
	}
	for _, d := range []string{scratch, workerTmp, workerRun} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("LockExclusive left %s: %v", d, err)
		}
	}
	if _, err := os.Stat(cacheMount); err != nil {
		t.Errorf("LockExclusive removed a cache mount: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tmp")); err != nil {
		t.Errorf("LockExclusive removed tmp/ itself: %v", err)
	}
	// While the build holds it, nobody else gets it.
	f, err := os.Open(filepath.Join(dir, "lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Errorf("shared flock during a build = %v, want EWOULDBLOCK", err)
	}
	s2.Unlock()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Errorf("flock after Unlock = %v", err)
	}
}

// TestLockGoroutines: goroutines of one Store share its lock, as the builds
// of one process's images do: a second LockExclusive returns at once and
// clears nothing the first one's build is using, another Store (another
// process) waits until the last hold is released, and only that last Unlock
// empties tmp/.
func TestLockGoroutines(t *testing.T) {
	dir := t.TempDir()
	s1, s2 := open(t, dir), open(t, dir)
	if err := s1.LockExclusive(); err != nil {
		t.Fatal(err)
	}
	inUse := filepath.Join(dir, "tmp", "first-build")
	if err := os.MkdirAll(inUse, 0o700); err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() { second <- s1.LockExclusive() }()
	select {
	case err := <-second:
		if err != nil {
			t.Fatalf("a second hold: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second LockExclusive of the same Store waits for the first")
	}
	if _, err := os.Stat(inUse); err != nil {
		t.Errorf("the second hold cleared the first one's scratch: %v", err)
	}
	if err := s1.LockShared(); err != nil {
		t.Fatalf("a reader of the same Store: %v", err)
	}
	s1.Unlock()

	other := make(chan error, 1)
	go func() { other <- s2.LockExclusive() }()
	s1.Unlock()
	select {
	case err := <-other:
		t.Fatalf("another Store got the lock while a hold remains: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := os.Stat(inUse); err != nil {
		t.Errorf("an Unlock before the last cleared tmp/: %v", err)
	}
	s1.Unlock()
	select {
	case err := <-other:
		if err != nil {
			t.Fatalf("LockExclusive after the last hold: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("another Store still waits after the last hold was released")
	}
	if _, err := os.Stat(inUse); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the last Unlock left tmp/ as it was: %v", err)
	}
	s2.Unlock()
	s1.Unlock() // one more than taken: nothing happens
}

func TestCleanDir(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a/b/c", "d"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CleanDir(dir); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("after CleanDir: %v, %v", ents, err)
	}
	if err := CleanDir(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CleanDir(missing) = %v, want ErrNotExist", err)
	}
}

// TestLockPrune: a prune waits for every Store that has built to be closed
// (a build's image is named after the build lock is released), and builds
// wait for the prune.
func TestLockPrune(t *testing.T) {
	dir := t.TempDir()
	builder, pruner, other := open(t, dir), open(t, dir), open(t, dir)
	if err := builder.LockExclusive(); err != nil {
		t.Fatal(err)
	}
	builder.Unlock() // built; the name is not given yet
	done := make(chan error, 1)
	go func() { done <- pruner.LockPrune() }()
	select {
	case err := <-done:
		t.Fatalf("LockPrune did not wait for a Store that built: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	// The builder still takes the build lock (to name its image).
	if err := builder.LockExclusive(); err != nil {
		t.Fatal(err)
	}
	builder.Unlock()
	builder.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("LockPrune still waits after the builder closed its store")
	}
	go func() { done <- other.LockExclusive() }()
	select {
	case err := <-done:
		t.Fatalf("a build did not wait for the prune: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	pruner.Unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a build still waits after the prune")
	}
	other.Unlock()
	if err := other.LockPrune(); err == nil {
		t.Error("LockPrune on a Store that built = nil error")
	}
}

func TestCheckIDMap(t *testing.T) {
	root := t.TempDir()
	if err := CheckIDMap(root, true); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := CheckIDMap(root, true); err != nil {
		t.Fatalf("same mapping again: %v", err)
	}
	err := CheckIDMap(root, false)
	if err == nil || !strings.Contains(err.Error(), "single ID mapping") || !strings.Contains(err.Error(), "SNAPBUILD_USERNS=single") {
		t.Fatalf("subids on a single-ID store: got %v, want an error naming both mappings and the fix", err)
	}
	other := t.TempDir()
	if err := CheckIDMap(other, false); err != nil {
		t.Fatal(err)
	}
	if err := CheckIDMap(other, true); err == nil || !strings.Contains(err.Error(), "subids ID mapping") {
		t.Fatalf("single on a subids store: got %v", err)
	}
}

// TestOpenAnyIDMap: in the build namespace Open refuses a store of the
// other ID mapping, and opens it with AnyIDMap (df), recording nothing.
func TestOpenAnyIDMap(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("sandbox.Entered needs euid 0")
	}
	root := t.TempDir()
	if err := CheckMode(root, true); err != nil {
		t.Fatal(err)
	}
	if err := CheckIDMap(root, true); err != nil {
		t.Fatal(err)
	}
	// As EnterNamespace marks a process in the subordinate ID mapping.
	t.Setenv("_CONTAINERS_USERNS_CONFIGURED", "1")
	t.Setenv("_SNAPBUILD_USERNS_SINGLE", "")
	if s, err := Open(root); err == nil || !strings.Contains(err.Error(), "single ID mapping") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a single-ID store with subids: error %v, want the mapping refused", err)
	}
	s, err := Open(root, AnyIDMap)
	if err != nil {
		t.Fatalf("Open(AnyIDMap): %v", err)
	}
	s.Close()
	if b, err := os.ReadFile(filepath.Join(root, "idmap")); err != nil || strings.TrimSpace(string(b)) != "single" {
		t.Errorf("idmap after Open(AnyIDMap) = %q, %v; want single kept", b, err)
	}
}
