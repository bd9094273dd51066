package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/snapbuild/snapbuild/internal/testimage"
)

// TestProgressCanceledStage: of two stages that run at once, b fails while
// a sleeps. a is stopped at once and its step ends CANCELED, as BuildKit
// prints it, in plain and JSON progress; only b's step ends ERROR, and the
// build's error is b's failure.
func TestProgressCanceledStage(t *testing.T) {
	requireRoot(t)
	requireTools(t, "ldd")
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	must(t, testimage.WriteLayout(base, testimage.Spec{
		Tag:   "cancel-base",
		Tools: []string{"sh", "echo", "sleep"},
		Dirs:  []string{"/etc", "/tmp"},
		Files: map[string]string{"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"},
	}))
	// Two ops at once whatever the CPUs: the default parallelism is
	// GOMAXPROCS.
	r := runner{t: t, root: filepath.Join(dir, "store"), env: []string{"GOMAXPROCS=2"}}
	r.ok("load", base)

	build := func(word, progress string) result {
		ctx := filepath.Join(dir, word)
		must(t, os.MkdirAll(ctx, 0o755))
		dockerfile := "FROM cancel-base AS a\nRUN echo " + word + "-a-started; sleep 120\n" +
			"FROM cancel-base AS b\nRUN sleep 2; echo " + word + "-b-fails; exit 3\n" +
			"FROM cancel-base\nCOPY --from=a /etc/passwd /a\nCOPY --from=b /etc/passwd /b\n"
		must(t, os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(dockerfile), 0o644))
		start := time.Now()
		res := r.run("", "build", "-f", filepath.Join(ctx, "Dockerfile"), "-t", word, "--progress", progress, ctx)
		if res.code == 0 {
			t.Fatalf("build --progress %s succeeded; stage b exits 3\n%s", progress, res.stderr)
		}
		if d := time.Since(start); d > 60*time.Second {
			t.Errorf("build --progress %s took %s: stage a's sleep 120 was not stopped when b failed", progress, d.Round(time.Second))
		}
		// The error is b's, not a's cancellation.
		if !strings.Contains(res.stderr, "exit 3") && !strings.Contains(res.stderr, "exit status 3") && !strings.Contains(res.stderr, "exit code 3") {
			t.Errorf("build --progress %s: the error does not report b's exit status 3:\n%s", progress, tail(res.stderr, 15))
		}
		return res
	}

	plain := build("plain", "plain").stderr
	entry := func(pattern string) string {
		m := regexp.MustCompile(`(?m)^#(\d+) \[\d+/\d+\] ` + pattern).FindStringSubmatch(plain)
		if m == nil {
			t.Fatalf("no entry %q in the plain progress:\n%s", pattern, plain)
		}
		return m[1]
	}
	a, b := entry(`RUN echo plain-a-started`), entry(`RUN sleep 2`)
	if !regexp.MustCompile(`(?m)^#` + a + ` CANCELED \d+\.\d\ds$`).MatchString(plain) {
		t.Errorf("stage a's step #%s does not end CANCELED:\n%s", a, plain)
	}
	if !regexp.MustCompile(`(?m)^#` + b + ` ERROR \d+\.\d\ds$`).MatchString(plain) {
		t.Errorf("stage b's step #%s does not end ERROR:\n%s", b, plain)
	}
	if n := len(regexp.MustCompile(`(?m)^#\d+ ERROR `).FindAllString(plain, -1)); n != 1 {
		t.Errorf("%d steps end ERROR, want only b's:\n%s", n, plain)
	}
	if !strings.Contains(plain, "#"+a+" plain-a-started") {
		t.Errorf("stage a's step did not run before it was stopped:\n%s", plain)
	}

	// JSON: a's done and entry-done say canceled and carry no error.
	js := build("json", "json").stderr
	var aDone, bDone []map[string]any
	for _, line := range strings.Split(js, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("progress line %q: %v", line, err)
		}
		if e["kind"] != "done" && e["kind"] != "entry-done" {
			continue
		}
		ins, _ := e["instruction"].(string) // done
		if label, ok := e["label"].(string); ok {
			ins = label // entry-done
		}
		switch {
		case strings.Contains(ins, "json-a-started"):
			aDone = append(aDone, e)
		case strings.Contains(ins, "json-b-fails"):
			bDone = append(bDone, e)
		}
	}
	if len(aDone) == 0 || len(bDone) == 0 {
		t.Fatalf("no done events for the steps of a (%d) and b (%d):\n%s", len(aDone), len(bDone), js)
	}
	for _, e := range aDone {
		if e["canceled"] != true || e["error"] != nil {
			t.Errorf("stage a's %s: canceled %v, error %v; want canceled with no error", e["kind"], e["canceled"], e["error"])
		}
	}
	for _, e := range bDone {
		if e["canceled"] != nil || e["error"] == nil {
			t.Errorf("stage b's %s: canceled %v, error %v; want the error", e["kind"], e["canceled"], e["error"])
		}
	}
}
