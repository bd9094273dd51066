package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/internal/worker"
)

// TestWithoutSandbox: a Builder made WithoutSandbox stops, before changing
// the store (its scratch tmp/ aside), at a build whose step would run (not
// cached, or force_build), also after cached layers whose image records it
// holds back, and builds in its own process one whose steps are all cached
// or config only: the image a build with a sandbox would make.
func TestWithoutSandbox(t *testing.T) {
	ctx := context.Background()
	b := uBuilder(t)
	base := uExecLayer(t, b, &buildState{}, FromScratch().Env(map[string]string{"PATH": "/bin"}).last())
	if err := b.Tag("base", base.ID); err != nil {
		t.Fatal(err)
	}
	var events []Event
	b.progress = ProgressFunc(func(e Event) { events = append(events, e) })
	if err := WithoutSandbox()(b); err != nil {
		t.Fatal(err)
	}
	img := FromID("base").RunCommands([]string{"echo one"}).Env(map[string]string{"B": "2"})

	files := func() map[string]string {
		m := storeFiles(t, b.Root())
		delete(m, filepath.Join(b.Root(), "tmp"))             // scratch, emptied after each build
		delete(m, filepath.Join(b.Root(), "blobs", "sha256")) // see below
		return m
	}
	stops := func(what string, img uImg) {
		t.Helper()
		before := files()
		_, err := b.Build(ctx, img.layers)
		if !errors.Is(err, ErrNeedsSandbox) {
			t.Fatalf("%s: Build = %v, want ErrNeedsSandbox", what, err)
		}
		// Nothing changed; the only new files are blobs (the manifests
		// of cached layers, content-addressed: referenced by nothing
		// until the records are written, as prune counts them).
		after := files()
		for p, v := range before {
			if after[p] != v {
				t.Errorf("%s: Build changed %s before stopping", what, p)
			}
		}
		for p := range after {
			if _, ok := before[p]; !ok && !strings.HasPrefix(p, filepath.Join(b.Root(), "blobs", "sha256")+"/") {
				t.Errorf("%s: Build made %s before stopping", what, p)
			}
		}
	}
	stops("uncached RUN", img)

	// The RUN cached (as a step that changed nothing): the build runs
	// here, to the end.
	p, err := b.Plan(ctx, img.layers)
	if err != nil {
		t.Fatal(err)
	}
	key := p.Layers[1].Steps[0].Key
	w, err := worker.New(b.store.Blobs(), b.store.Snapshots(), filepath.Join(b.Root(), "worker"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Cache().Put(ctx, digest.NewDigestFromEncoded(digest.SHA256, key), []build.Ref{&worker.Ref{}}); err != nil {
		t.Fatal(err)
	}
	events = nil
	res, err := b.Build(ctx, img.layers)
	if err != nil {
		t.Fatalf("cached Build: %v", err)
	}
	if res.ID == "" || res.Stats.Cached != 2 || res.Stats.ContainersStarted != 0 {
		t.Errorf("cached Build = %s, stats %+v; want an image, 2 cached steps (FROM, RUN), no container", res.ID, res.Stats)
	}
	if len(events) == 0 {
		t.Error("a cached Build showed no progress")
	}
	if _, err := b.store.Resolve(res.ID); err != nil {
		t.Errorf("the cached build's image is not in the store: %v", err)
	}
	// The same build with a sandbox makes the same image.
	b.noSandbox = false
	again, err := b.Build(ctx, img.layers)
	b.noSandbox = true
	if err != nil || again.ID != res.ID {
		t.Errorf("Build with a sandbox = %s, %v; WithoutSandbox made %s", again.ID, err, res.ID)
	}

	// force_build runs every step again: it needs the sandbox.
	b.forceAll = true
	stops("force_build", img)
	b.forceAll = false
	// A step to run after the cached ones: their image records wait.
	// A config-only layer (a new image record) and a step to run after
	// the cached ones: their image records wait.
	stops("cached, then uncached", img.Env(map[string]string{"C": "3"}).RunCommands([]string{"echo three"}))

	// Run and Metadata's probe of an image with layers need it too.
	if _, err := b.Run(ctx, res.ID, nil, RunOptions{}); !errors.Is(err, ErrNeedsSandbox) {
		t.Errorf("Run = %v, want ErrNeedsSandbox", err)
	}
	if err := b.probeMetadata(ctx, &buildState{chain: digest.FromString("x")}, digest.FromString("m")); !errors.Is(err, ErrNeedsSandbox) {
		t.Errorf("probeMetadata = %v, want ErrNeedsSandbox", err)
	}
	if _, err := os.Stat(filepath.Join(b.Root(), "metadata")); err == nil {
		t.Error("a stopped metadata probe made the store's metadata directory")
	}
}
