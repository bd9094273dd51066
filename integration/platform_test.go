package integration

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/snapbuild/snapbuild/internal/testimage"
)

// TestBuildPlatform: snapbuild builds for the host's platform only. build
// --platform takes the host's (in any spelling) and builds as without it,
// TARGETPLATFORM being the host's; another platform, given to --platform
// or to a Dockerfile's FROM --platform, fails naming the host's platform
// (the FROM at its line), before anything runs, and names no image.
func TestBuildPlatform(t *testing.T) {
	requireRoot(t)
	requireTools(t, "ldd")
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	must(t, testimage.WriteLayout(base, testimage.Spec{
		Tag:   "platform-base",
		Tools: []string{"sh", "echo", "cat"},
		Dirs:  []string{"/etc", "/tmp"},
		Files: map[string]string{"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"},
	}))
	r := runner{t: t, root: filepath.Join(dir, "store")}
	r.ok("load", base)
	host := "linux/" + runtime.GOARCH
	foreign := "linux/arm64"
	if runtime.GOARCH == "arm64" {
		foreign = "linux/amd64"
	}
	context := func(name, dockerfile string) string {
		ctx := filepath.Join(dir, name)
		must(t, os.MkdirAll(ctx, 0o755))
		must(t, os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(dockerfile), 0o644))
		return ctx
	}

	ok := context("ok", "FROM platform-base\nARG TARGETPLATFORM\nRUN echo $TARGETPLATFORM > /target\n")
	spellings := []string{host, runtime.GOARCH}
	if runtime.GOARCH == "amd64" {
		spellings = append(spellings, "linux/amd64/v1")
	}
	for _, p := range spellings {
		r.ok("build", "--platform", p, "-t", "platform-ok", "--progress", "plain", ok)
		if got := r.ok("run", "platform-ok", "cat", "/target").stdout; got != host+"\n" {
			t.Errorf("build --platform %s: TARGETPLATFORM = %q, want %s", p, got, host)
		}
	}

	res := r.run("", "build", "--platform", foreign, "-t", "platform-foreign", ok)
	if res.code != 125 || !strings.Contains(res.stderr, "--platform "+foreign+": snapbuild builds for the host platform only, "+host) {
		t.Errorf("build --platform %s: exit %d, want 125 and an error naming the host's platform %s:\n%s", foreign, res.code, host, res.stderr)
	}

	from := context("from", "FROM --platform="+foreign+" platform-base\nRUN echo built > /built\n")
	res = r.run("", "build", "-t", "platform-from", "--progress", "plain", from)
	if res.code == 0 {
		t.Fatalf("FROM --platform=%s built an image on a %s host", foreign, host)
	}
	for _, w := range []string{"Dockerfile:1: ", "for " + foreign + " (FROM --platform)", "host platform only, " + host, "--platform=$BUILDPLATFORM"} {
		if !strings.Contains(res.stderr, w) {
			t.Errorf("FROM --platform=%s: the error does not say %q:\n%s", foreign, w, tail(res.stderr, 15))
		}
	}
	if strings.Contains(res.stderr, "RUN echo built") && strings.Contains(res.stderr, "DONE") {
		t.Errorf("a step ran:\n%s", res.stderr)
	}
	if images := r.ok("images").stdout; strings.Contains(images, "platform-from") || strings.Contains(images, "platform-foreign") {
		t.Errorf("a refused build named an image:\n%s", images)
	}
}
