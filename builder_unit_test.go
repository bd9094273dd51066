package snapbuild

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapbuild/snapbuild/internal/modal"
	"github.com/snapbuild/snapbuild/internal/testimage"
)

// ---- cache keys ----

// ---- config generation with a real store ----

// uStubBase records an image with no layers in b's store and returns its ID.
func uStubBase(t *testing.T, b *Builder) string {
	t.Helper()
	id, err := testimage.PutStub(b.e.Store())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Build end to end on steps that need no sandbox: FROM an existing image and
// config-only instructions.
func TestBuildConfigOnlyChain(t *testing.T) {
	t.Setenv("MODAL_IMAGE_BUILDER_VERSION", "")
	var events []Event
	b := uBuilder(t, WithProgress(ProgressFunc(func(e Event) { events = append(events, e) })))
	base := uStubBase(t, b)
	img := FromID(base).Env(map[string]string{"B": "2", "A": "x y"}).Cmd([]string{"run", "it"})
	res, err := b.Build(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	c := res.Config.Config
	if !reflect.DeepEqual(c.Env, []string{"PATH=/bin", "A=x y", "B=2"}) || !reflect.DeepEqual(c.Cmd, []string{"run", "it"}) {
		t.Errorf("config = %+v", c)
	}
	// Three entries (from_id, env, cmd) of four instructions; only the
	// from_id entry is cached, the others change only the config.
	if res.Stats != (Stats{Steps: 4, Cached: 1, Config: 3, Entries: 3, EntriesCached: 1}) {
		t.Errorf("stats = %+v, want 4 steps, 1 cached (the FROM of a stored image), 3 config; 3 entries, 1 cached", res.Stats)
	}
	var got []string
	for _, e := range events {
		if e.Kind == EventEntryStart || e.Kind == EventEntryDone {
			got = append(got, fmt.Sprintf("%s [%d/%d] %s %s cached=%v err=%q", e.Kind, e.Entry, e.Entries, e.Method, e.Label, e.Cached, e.Error))
			continue
		}
		got = append(got, fmt.Sprintf("%s %d/%d [%d/%d] %s cached=%v err=%q", e.Kind, e.Step, e.Total, e.Entry, e.Entries, e.Instruction, e.Cached, e.Error))
	}
	want := []string{
		`entry-start [1/3] from_id from_id("` + base + `") cached=false err=""`,
		"start 1/4 [1/3] FROM " + base + ` cached=false err=""`,
		"done 1/4 [1/3] FROM " + base + ` cached=true err=""`,
		`entry-done [1/3] from_id from_id("` + base + `") cached=true err=""`,
		`entry-start [2/3] env env({"A": "x y", "B": "2"}) cached=false err=""`,
		`start 2/4 [2/3] ENV A='x y' cached=false err=""`,
		`done 2/4 [2/3] ENV A='x y' cached=false err=""`,
		`start 3/4 [2/3] ENV B=2 cached=false err=""`,
		`done 3/4 [2/3] ENV B=2 cached=false err=""`,
		`entry-done [2/3] env env({"A": "x y", "B": "2"}) cached=false err=""`,
		`entry-start [3/3] cmd cmd(["run", "it"]) cached=false err=""`,
		`start 4/4 [3/3] CMD ["run", "it"] cached=false err=""`,
		`done 4/4 [3/3] CMD ["run", "it"] cached=false err=""`,
		`entry-done [3/3] cmd cmd(["run", "it"]) cached=false err=""`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events:\n got  %q\n want %q", got, want)
	}
	// Every Modal layer is an image; the chain is linked by Parent.
	rec, err := b.e.Store().Resolve(res.ID)
	if err != nil {
		t.Fatal(err)
	}
	envRec, err := b.e.Store().Resolve(rec.Parent)
	if err != nil {
		t.Fatalf("parent %q: %v", rec.Parent, err)
	}
	// from_id adds no layer of its own: the env layer's parent is the base.
	if envRec.Parent != base {
		t.Errorf("env layer's parent = %q, want the base %q", envRec.Parent, base)
	}
	if r, err := b.Build(context.Background(), FromID(base)); err != nil || r.ID != base {
		t.Errorf("Build(FromID(%s)) = %s, %v; want the same image", base, r.ID, err)
	}
	// Deterministic: the same chain builds to the same ID.
	res2, err := b.Build(context.Background(), img)
	if err != nil || res2.ID != res.ID || res2.Manifest.Digest != res.Manifest.Digest {
		t.Errorf("rebuild: %s %v, want %s", res2.ID, err, res.ID)
	}
	// A different value, a different image.
	res3, err := b.Build(context.Background(), FromID(base).Env(map[string]string{"B": "3", "A": "x y"}).Cmd([]string{"run", "it"}))
	if err != nil || res3.ID == res.ID {
		t.Errorf("changed env: %s %v", res3.ID, err)
	}
}

func TestBuildErrors(t *testing.T) {
	t.Setenv("MODAL_IMAGE_BUILDER_VERSION", "")
	b := uBuilder(t)
	ctx := context.Background()
	if _, err := b.Build(ctx, Image{}); err == nil || err.Error() != "No commands were provided for the image — have you tried using snapbuild.DebianSlim()?" {
		t.Errorf("empty image: %v", err)
	}
	bad := DebianSlim("2.7")
	if _, err := b.Build(ctx, bad); err != bad.Err() {
		t.Errorf("image error: %v, want %v", err, bad.Err())
	}
	if _, err := b.Build(ctx, FromID("missing")); err == nil || !strings.HasPrefix(err.Error(), `from_id: FROM missing: image "missing" is not in the store, and snapbuild does not pull images: provide it first`) {
		t.Errorf("missing base: %v", err)
	}
	if _, err := b.Build(ctx, FromID("im-0123456789012345678901")); err == nil || !strings.HasPrefix(err.Error(), `from_id: no image "im-0123456789012345678901" in store `) {
		t.Errorf("missing base ID: %v", err)
	}
	noFrom := Image{layers: []*modal.Layer{{Method: "x", Commands: []string{"RUN true"}, Root: &modal.RootSpec{FromID: "a"}}}}
	if _, err := b.Build(ctx, noFrom); err == nil || err.Error() != "x: a layer's commands must start with FROM" {
		t.Errorf("no FROM: %v", err)
	}
	twoRoots := FromID("a")
	twoRoots.layers = append(twoRoots.layers, &modal.Layer{Method: "y", Commands: []string{"FROM other"}})
	if _, err := b.Build(ctx, twoRoots); err == nil || err.Error() != `y: only the first layer may have a FROM other than "FROM base"` {
		t.Errorf("second root: %v", err)
	}
	unsupported := FromID("a")
	unsupported.layers = append(unsupported.layers, &modal.Layer{Method: "z", Commands: []string{"FROM base", "COPPY a b"}})
	base := uStubBase(t, b)
	unsupported.layers[0] = FromID(base).layers[0]
	if _, err := b.Build(ctx, unsupported); err == nil || !strings.Contains(err.Error(), `unknown instruction: COPPY (did you mean COPY?)`) {
		t.Errorf("unknown instruction: %v", err)
	}
	t.Setenv("MODAL_IMAGE_BUILDER_VERSION", "2024.10")
	if _, err := b.Build(ctx, FromID(base)); err == nil || !strings.Contains(err.Error(), "snapbuild implements the 2025.06 builder") {
		t.Errorf("builder version: %v", err)
	}
	t.Setenv("MODAL_IMAGE_BUILDER_VERSION", "PREVIEW")
	if _, err := b.Build(ctx, FromID(base)); err != nil {
		t.Errorf("PREVIEW: %v", err)
	}
}

// Entries count what the user wrote: each dockerfile_commands instruction
// is one; a failing instruction ends its entry with the error, and the
// summary counts agree with what the progress printed.
func TestBuildEntriesDockerfileAndFailure(t *testing.T) {
	t.Setenv("MODAL_IMAGE_BUILDER_VERSION", "")
	var plain bytes.Buffer
	var sink Progress = NewPlainProgress(&plain)
	b := uBuilder(t, WithProgress(ProgressFunc(func(e Event) { sink.Event(e) })))
	base := uStubBase(t, b)
	img := FromID(base).DockerfileCommands([]string{"ENV A=1", `CMD ["a"]`}, DockerfileOptions{ContextDir: t.TempDir()}).
		Env(map[string]string{"B": "2"})
	res, err := b.Build(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	want := `#1 [1/4] from_id("` + base + `")` + "\n" +
		"#1 FROM " + base + "\n" +
		"#1 CACHED\n" +
		"#2 [2/4] ENV A=1\n" +
		"#2 DONE Ns\n" +
		`#3 [3/4] CMD ["a"]` + "\n" +
		"#3 DONE Ns\n" +
		`#4 [4/4] env({"B": "2"})` + "\n" +
		"#4 ENV B=2\n" +
		"#4 DONE Ns\n"
	if got := regexp.MustCompile(`DONE [0-9.]+s`).ReplaceAllString(plain.String(), "DONE Ns"); got != want {
		t.Errorf("progress:\n got  %q\n want %q", got, want)
	}
	if s := res.Stats; s.Entries != 4 || s.EntriesCached != strings.Count(plain.String(), "CACHED") || s.Steps != 4 || s.Config != 3 {
		t.Errorf("stats %+v: want 4 entries, as many cached as printed CACHED, 4 steps, 3 config", s)
	}

	// ${X:?} fails when X is unset: the entry ends with the error.
	plain.Reset()
	var events []Event
	sink = ProgressFunc(func(e Event) { events = append(events, e) })
	_, err = b.Build(context.Background(), FromID(base).DockerfileCommands([]string{"ENV C=${NOPE:?unset}"}, DockerfileOptions{ContextDir: t.TempDir()}))
	if err == nil {
		t.Fatal("a failing ENV built")
	}
	if len(events) == 0 {
		t.Fatalf("no events; err %v", err)
	}
	last := events[len(events)-1]
	if last.Kind != EventEntryDone || last.Entry != 2 || last.Error == "" || last.Cached {
		t.Errorf("last event %+v: want the env entry done with its error", last)
	}
}

// With a heartbeat of 1ms, nothing reaches the progress after Build
// returns (run with -race).
func TestBuildNoEventAfterReturn(t *testing.T) {
	t.Setenv("MODAL_IMAGE_BUILDER_VERSION", "")
	var mu sync.Mutex
	var n int
	b := uBuilder(t, WithHeartbeat(time.Millisecond), WithProgress(ProgressFunc(func(e Event) {
		time.Sleep(2 * time.Millisecond) // a slow terminal: heartbeats are due
		mu.Lock()
		n++
		mu.Unlock()
	})))
	base := uStubBase(t, b)
	if _, err := b.Build(context.Background(), FromID(base).Env(map[string]string{"A": "1"}).Cmd([]string{"x"})); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	after := n
	mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if n != after {
		t.Errorf("%d events after Build returned", n-after)
	}
}

// uBuilder is a Builder on a new store in a temporary directory, with no
// progress output unless opts give one.
func uBuilder(t *testing.T, opts ...Option) *Builder {
	t.Helper()
	b, err := NewBuilder(append([]Option{WithRoot(t.TempDir()), WithProgress(ProgressFunc(func(Event) {}))}, opts...)...)
	if err != nil {
		t.Fatalf("NewBuilder: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
