package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/snapbuild/snapbuild/internal/testimage"
)

// The files a step leaves have, in the store that built them, the mtimes
// their layer records: clamped to SOURCE_DATE_EPOCH by default, so a store
// that unpacked the image from a registry sees the same files as the one
// that built it. With --timestamps keep both keep the real times.
func TestSnapshotTimesRoot(t *testing.T) {
	requireRoot(t)
	requireTools(t, "ldd")
	dir := t.TempDir()
	snapshotTimes(t, runner{t: t, root: filepath.Join(dir, "store")}, dir)
}

func TestSnapshotTimesRootless(t *testing.T) {
	requireTools(t, "ldd")
	u := ensureTestUser(t)
	home := userDir(t, u)
	snapshotTimes(t, runner{t: t, user: u.Username, root: filepath.Join(home, "store")}, home)
}

func snapshotTimes(t *testing.T, r runner, dir string) {
	layout := filepath.Join(dir, "times-layout")
	must(t, testimage.WriteLayout(layout, testimage.Spec{Tag: "times-base", Tools: []string{"sh", "touch", "mkdir", "stat", "ln"}, Dirs: []string{"/tmp"}}))
	ctxDir := filepath.Join(dir, "times-context")
	must(t, os.MkdirAll(ctxDir, 0o755))
	const dockerfile = "FROM times-base\nARG MODE\nRUN mkdir -p /d/sub && touch /d/sub/f /top && ln -s /top /d/link && echo $MODE\n"
	must(t, os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(dockerfile), 0o644))
	must(t, exec.Command("chmod", "-R", "a+rX", layout, ctxDir).Run())
	r.ok("load", layout)

	mtimes := func(name string) []int64 {
		t.Helper()
		out := r.ok("run", name, "--", "stat", "-c", "%Y", "/d", "/d/sub", "/d/sub/f", "/top").stdout
		var ts []int64
		for _, f := range strings.Fields(out) {
			n, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				t.Fatalf("stat in %s printed %q", name, out)
			}
			ts = append(ts, n)
		}
		return ts
	}
	const epoch = 315532800 // the default SOURCE_DATE_EPOCH, 1980-01-01
	r.ok("build", "-t", "clamped", "--build-arg", "MODE=clamp", ctxDir)
	for i, ts := range mtimes("clamped") {
		if ts != epoch {
			t.Errorf("clamped: entry %d has mtime %d in the store, want %d as its layer has it", i, ts, epoch)
		}
	}
	if out := r.ok("run", "clamped", "--", "stat", "-c", "%Y", "-L", "/d/link").stdout; strings.TrimSpace(out) != strconv.Itoa(epoch) {
		t.Errorf("the symlink's target: mtime %q", out)
	}

	start := time.Now().Add(-time.Minute).Unix()
	r.ok("build", "-t", "kept", "--timestamps", "keep", "--build-arg", "MODE=keep", ctxDir)
	for i, ts := range mtimes("kept") {
		if ts < start {
			t.Errorf("--timestamps keep: entry %d has mtime %d, want the time it was made (after %d)", i, ts, start)
		}
	}
}
