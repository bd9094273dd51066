package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/snapbuild/snapbuild/internal/testimage"
)

// TestPruneRoot and TestPruneRootless build, rename and remove images, then
// check that prune frees the removed images' space (df and du agree), that
// the named images still run and export, that a rebuild reruns exactly the
// pruned steps, and that a prune started during a build waits for it.
func TestPruneRoot(t *testing.T) {
	requireRoot(t)
	requireTools(t, "ldd", "skopeo", "du")
	dir := t.TempDir()
	pruneFlow(t, runner{t: t, root: filepath.Join(dir, "store")}, dir)
}

func TestPruneRootless(t *testing.T) {
	requireTools(t, "ldd", "skopeo", "du")
	u := ensureTestUser(t)
	home := userDir(t, u)
	pruneFlow(t, runner{t: t, user: u.Username, root: filepath.Join(home, "store")}, home)
}

// usage is what `snapbuild df --json` prints.
type usage struct {
	Images []struct {
		ID    string   `json:"id"`
		Names []string `json:"names"`
	} `json:"images"`
	ImagesSize int64 `json:"imagesSize"`
	Cache      []struct {
		Kind   string `json:"kind"`
		Shared bool   `json:"shared"`
	} `json:"cache"`
	CacheSize        int64 `json:"cacheSize"`
	CacheReclaimable int64 `json:"cacheReclaimable"`
	UnreferencedSize int64 `json:"unreferencedSize"`
}

func df(t *testing.T, r runner) usage {
	t.Helper()
	var u usage
	if err := json.Unmarshal([]byte(r.ok("df", "--json").stdout), &u); err != nil {
		t.Fatalf("df --json: %v", err)
	}
	return u
}

// duBytes is the apparent size of dir, as du counts it.
func duBytes(t *testing.T, dir string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-sb", dir).Output()
	if err != nil {
		t.Fatalf("du -sb %s: %v", dir, err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	must(t, err)
	return n
}

// pruneDockerfile writes a random file of SIZE bytes (a layer no other
// build shares) and a marker; BEFORE runs first, in its own step.
const pruneDockerfile = `FROM prune-base
ARG BEFORE=true
RUN $BEFORE
ARG SIZE MARK
RUN head -c $SIZE /dev/urandom >/data && echo $MARK >/marker
`

func pruneFlow(t *testing.T, r runner, dir string) {
	layout := filepath.Join(dir, "layout")
	must(t, testimage.WriteLayout(layout, testimage.Spec{Tag: "prune-base", Tools: []string{"sh", "head", "echo", "cat", "sleep", "true", "wc"}, Dirs: []string{"/tmp"}}))
	ctxDir := filepath.Join(dir, "context")
	must(t, os.MkdirAll(ctxDir, 0o755))
	must(t, os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(pruneDockerfile), 0o644))
	must(t, exec.Command("chmod", "-R", "a+rX", layout, ctxDir).Run())
	r.ok("load", layout)
	build := func(name, mark, size string, extra ...string) buildSummary {
		t.Helper()
		args := append([]string{"build", "-t", name, "--progress", "json", "--build-arg", "MARK=" + mark, "--build-arg", "SIZE=" + size}, extra...)
		return lastSummary(t, r.ok(append(args, ctxDir)...).stdout)
	}

	// keep: built as keep-old, renamed (built again under its new name,
	// from the cache), the old name removed. gone: built and removed.
	keep := build("keep-old", "keep", "2000000")
	if again := build("keep", "keep", "2000000"); again.ID != keep.ID || again.Stats.ContainersStarted != 0 {
		t.Fatalf("building keep again: image %s (%d containers), want %s from the cache", again.ID, again.Stats.ContainersStarted, keep.ID)
	}
	r.ok("rm", "keep-old")
	gone := build("gone", "gone", "3000000")
	r.ok("rm", "gone")

	before, duBefore := df(t, r), duBytes(t, r.root)
	if before.CacheReclaimable < 3000000 {
		t.Errorf("df before prune: %d bytes reclaimable, want at least gone's 3 MB of data", before.CacheReclaimable)
	}
	if len(before.Images) != 2 {
		t.Errorf("df before prune lists %d named images, want 2 (prune-base and keep): %+v", len(before.Images), before.Images)
	}
	res := r.ok("prune", "-f")
	if !strings.Contains(res.stdout, "Deleted build cache objects:\n") || !strings.Contains(res.stdout, "\nTotal reclaimed space: ") {
		t.Errorf("prune -f printed:\n%s\nwant the removed steps and the total", res.stdout)
	}
	after, duAfter := df(t, r), duBytes(t, r.root)
	// gone's layer is stored twice: a zstd blob (random data does not
	// compress) and its snapshot.
	if freed := duBefore - duAfter; freed < 2*3000000 {
		t.Errorf("du: prune freed %d bytes (%d -> %d), want at least 6 MB (gone's blob and snapshot)", freed, duBefore, duAfter)
	}
	if after.CacheReclaimable != 0 || after.UnreferencedSize != 0 || after.ImagesSize != before.ImagesSize {
		t.Errorf("df after prune: %d reclaimable, %d unreferenced, images %d bytes (before %d); want 0, 0, unchanged",
			after.CacheReclaimable, after.UnreferencedSize, after.ImagesSize, before.ImagesSize)
	}
	if freed := before.CacheSize - after.CacheSize; freed < before.CacheReclaimable {
		t.Errorf("df: the build cache went from %d to %d bytes, want %d freed as df said", before.CacheSize, after.CacheSize, before.CacheReclaimable)
	}
	checkImage(t, r, dir, "keep", "keep", 2000000)
	if out := r.ok("run", "prune-base", "--", "echo", "base").stdout; out != "base\n" {
		t.Errorf("run prune-base after prune: %q", out)
	}
	// The removed image's pruned steps run again; keep's are cached.
	if s := build("gone", "gone", "3000000"); s.Stats.ContainersStarted != 1 {
		t.Errorf("rebuilding gone after prune: %d containers started, want 1 (its RUN head; RUN true is shared with keep)", s.Stats.ContainersStarted)
	} else if s.ID == gone.ID {
		t.Errorf("rebuilding gone made %s again, from data prune should have removed", s.ID)
	}
	r.ok("rm", "gone")
	// Entries used just now, in a cache far under 1 GB, stay.
	for _, args := range [][]string{{"--filter", "until=1h"}, {"--keep-storage", "1GB"}} {
		if res := r.ok(append([]string{"prune", "-f"}, args...)...); strings.Contains(res.stdout, "Deleted build cache objects") {
			t.Errorf("prune %s removed entries used just now:\n%s", strings.Join(args, " "), res.stdout)
		}
	}
	if u := df(t, r); u.CacheReclaimable < 3000000 {
		t.Errorf("df after the prunes that should keep everything: %d bytes reclaimable, want gone's 3 MB still there", u.CacheReclaimable)
	}
	if s := build("keep", "keep", "2000000"); s.ID != keep.ID || s.Stats.ContainersStarted != 0 {
		t.Errorf("rebuilding keep after prune: image %s, %d containers started; want %s, all cached", s.ID, s.Stats.ContainersStarted, keep.ID)
	}

	// prune --all leaves the named images alone: their steps run again.
	r.ok("prune", "--all", "-f")
	if u := df(t, r); len(u.Cache) != 0 || u.CacheSize != 0 {
		t.Errorf("df after prune --all: %d entries, %d bytes of cache; want none", len(u.Cache), u.CacheSize)
	}
	checkImage(t, r, dir, "keep", "keep", 2000000)
	if s := build("keep", "keep", "2000000"); s.Stats.ContainersStarted != 2 {
		t.Errorf("rebuilding keep after prune --all: %d containers started, want 2", s.Stats.ContainersStarted)
	}

	// A prune started during a build waits for the build to finish,
	// naming its image included; the image is whole.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bcmd := r.cmd(ctx, "build", "-t", "busy", "--progress", "plain", "--build-arg", "MARK=busy", "--build-arg", "SIZE=1000000", "--build-arg", "BEFORE=sleep 5", ctxDir)
	var bout, berr bytes.Buffer
	bcmd.Stdout, bcmd.Stderr = &bout, &berr
	must(t, bcmd.Start())
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ents, _ := os.ReadDir(filepath.Join(r.root, "snapshots", ".tmp"))
		if len(ents) > 0 {
			break // the build's first step is running
		}
		if time.Now().After(deadline) {
			t.Fatalf("the build did not start its step in 2 minutes:\n%s", berr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	pr := r.ok("prune", "--all", "-f")
	buildErr := bcmd.Wait()
	if buildErr != nil {
		t.Fatalf("the build a prune ran beside failed: %v\n%s", buildErr, tail(berr.String(), 30))
	}
	if !strings.Contains(pr.stderr, "waiting for snapbuild processes that build on "+r.root+" to finish...") {
		t.Errorf("prune during a build did not wait for it; stderr:\n%s", pr.stderr)
	}
	checkImage(t, r, dir, "busy", "busy", 1000000)
	checkImage(t, r, dir, "keep", "keep", 2000000)
}

// checkImage runs image name (its marker and data size must be mark and
// size) and exports it to an OCI layout that skopeo copies, reading and
// verifying every blob.
func checkImage(t *testing.T, r runner, dir, name, mark string, size int) {
	t.Helper()
	out := r.ok("run", name, "--", "sh", "-c", "cat /marker; wc -c </data").stdout
	if want := mark + "\n" + strconv.Itoa(size) + "\n"; out != want {
		t.Errorf("run %s: %q, want %q", name, out, want)
	}
	oci := filepath.Join(dir, "export-"+name+strconv.FormatInt(time.Now().UnixNano(), 36))
	r.ok("export", name, "oci:"+oci+":latest")
	copyDir := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("skopeo", "copy", "oci:"+oci+":latest", "dir:"+copyDir).CombinedOutput(); err != nil {
		t.Errorf("skopeo copy of the export of %s: %v\n%s", name, err, out)
	}
}
