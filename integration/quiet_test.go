package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/snapbuild/snapbuild/internal/testimage"
)

// TestBuildQuiet: build -q, as docker build -q and podman build -q, prints
// the image's ID and nothing else, on stdout, and no progress; the ID is
// the one the normal output names. A failing build prints nothing on
// stdout and its error on stderr.
func TestBuildQuiet(t *testing.T) {
	requireRoot(t)
	requireTools(t, "ldd")
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	must(t, testimage.WriteLayout(base, testimage.Spec{
		Tag:   "quiet-base",
		Tools: []string{"sh", "echo"},
		Dirs:  []string{"/etc", "/tmp"},
		Files: map[string]string{"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"},
	}))
	r := runner{t: t, root: filepath.Join(dir, "store")}
	r.ok("load", base)

	ctx := filepath.Join(dir, "ok")
	must(t, os.MkdirAll(ctx, 0o755))
	must(t, os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM quiet-base\nRUN echo built-loudly > /out\n"), 0o644))
	res := r.ok("build", "-q", "-t", "quiet", ctx)
	if res.stderr != "" {
		t.Errorf("build -q wrote on stderr:\n%s", res.stderr)
	}
	if !regexp.MustCompile(`^im-[0-9A-Za-z]+\n$`).MatchString(res.stdout) {
		t.Fatalf("build -q stdout = %q, want one image ID and a newline", res.stdout)
	}
	id := strings.TrimSpace(res.stdout)
	// The same build again, cached, with the normal output: "NAME ID
	// MANIFEST (...)".
	loud := r.ok("build", "--progress", "plain", "-t", "quiet", ctx)
	if f := strings.Fields(loud.stdout); len(f) < 2 || f[0] != "quiet" || f[1] != id {
		t.Errorf("build prints %q; build -q printed the ID %s", loud.stdout, id)
	}
	if !strings.Contains(loud.stderr, "RUN echo built-loudly") {
		t.Errorf("the normal build shows no progress:\n%s", loud.stderr)
	}

	bad := filepath.Join(dir, "bad")
	must(t, os.MkdirAll(bad, 0o755))
	must(t, os.WriteFile(filepath.Join(bad, "Dockerfile"), []byte("FROM quiet-base\nRUN echo failing-quietly; exit 4\n"), 0o644))
	fail := r.run("", "build", "--quiet", "-t", "quiet-bad", bad)
	if fail.code == 0 {
		t.Fatal("build -q of a failing RUN succeeded")
	}
	if fail.stdout != "" {
		t.Errorf("a failed build -q printed on stdout: %q", fail.stdout)
	}
	if !strings.Contains(fail.stderr, "exit code 4") {
		t.Errorf("a failed build -q does not report the failure on stderr:\n%s", fail.stderr)
	}
	if strings.Contains(fail.stderr, "[1/2]") {
		t.Errorf("a failed build -q shows progress:\n%s", fail.stderr)
	}
}
