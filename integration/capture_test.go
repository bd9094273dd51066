package integration

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapbuild/snapbuild/internal/testimage"
)

// TestProgressCommitTime: the JSON done event of a RUN that ran carries
// the time its layer capture took ("commit", within "duration"); a cached
// rebuild of it carries none, and neither does a step that captured no
// layer (ENV).
func TestProgressCommitTime(t *testing.T) {
	requireRoot(t)
	requireTools(t, "ldd", "sh", "dd")
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	must(t, testimage.WriteLayout(base, testimage.Spec{Tag: "capture-base", Tools: []string{"sh", "dd"}, Dirs: []string{"/tmp"}}))
	r := runner{t: t, root: filepath.Join(dir, "store")}
	r.ok("load", base)
	ctx := filepath.Join(dir, "context")
	must(t, os.MkdirAll(ctx, 0o755))
	must(t, os.WriteFile(filepath.Join(ctx, "Dockerfile"),
		[]byte("FROM capture-base\nENV X=1\nRUN dd if=/dev/urandom of=/data bs=1M count=8 2>/dev/null\n"), 0o644))

	type done struct {
		Kind, Instruction string
		Cached            bool
		Duration, Commit  time.Duration
	}
	events := func(stderr string) map[string]done {
		m := map[string]done{}
		sc := bufio.NewScanner(strings.NewReader(stderr))
		for sc.Scan() {
			var e done
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Kind == "done" {
				m[strings.Fields(e.Instruction)[0]] = e
			}
		}
		return m
	}

	first := events(r.ok("build", "-t", "capture", "--progress", "json", ctx).stderr)
	run, ok := first["RUN"]
	if !ok || run.Cached {
		t.Fatalf("first build: RUN done event %+v, want one that ran", run)
	}
	if run.Commit <= 0 || run.Commit > run.Duration {
		t.Errorf("first build: RUN commit %v, duration %v: want 0 < commit <= duration", run.Commit, run.Duration)
	}
	if env := first["ENV"]; env.Commit != 0 {
		t.Errorf("first build: ENV commit %v, want none", env.Commit)
	}

	again := events(r.ok("build", "-t", "capture", "--progress", "json", ctx).stderr)
	if run := again["RUN"]; !run.Cached || run.Commit != 0 {
		t.Errorf("rebuild: RUN done event %+v, want cached with no commit", run)
	}
}
