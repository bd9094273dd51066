package build

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	alpineRef  = "docker.io/library/alpine:3.20"
	busyboxRef = "docker.io/library/busybox:latest"
	alpineID   = "docker-image://" + alpineRef
	busyboxID  = "docker-image://" + busyboxRef
)

// testCtx bounds a test's solve: a solver that fails to run things in
// parallel leaves a barrier closed, and the test fails when this ends
// instead of hanging.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recorder collects progress events.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) record(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// kinds returns "kind name" per event, in order.
func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Kind.String()+" "+e.Vertex.Name)
	}
	return out
}

func (r *recorder) of(kind EventKind) []string {
	var out []string
	for _, s := range r.list() {
		if name, ok := strings.CutPrefix(s, kind.String()+" "); ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// checkNoLeak fails if goroutines started during the test outlive it, or if
// a worker call is still running: Solve must wait for everything it started.
func checkNoLeak(t *testing.T, w *fakeWorker) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		w.mu.Lock()
		inFlight := w.inFlight
		w.mu.Unlock()
		if inFlight != 0 {
			t.Errorf("%d worker calls still running after Solve returned", inFlight)
		}
		// A goroutine that has called wg.Done still has to return;
		// give the scheduler a moment before counting.
		var now int
		for range 100 {
			if now = runtime.NumGoroutine(); now <= before {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines: %d before the solve, %d after:\n%s", before, now, buf[:runtime.Stack(buf, true)])
	})
}

func newSolver(t *testing.T, w Worker, opts ...Option) *Solver {
	t.Helper()
	s, err := NewSolver(w, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSolveChain(t *testing.T) {
	w := newFakeWorker()
	checkNoLeak(t, w)
	rec := &recorder{}
	st := llb.Image(alpineRef).
		Run(llb.Args([]string{"make"})).Root().
		File(llb.Mkfile("/etc/motd", 0o644, []byte("hi")))
	res, err := newSolver(t, w, WithProgress(rec.record)).Solve(testCtx(t), marshal(t, st))
	if err != nil {
		t.Fatalf("Solve: %v", err)
	}
	want := "file[mkfile /etc/motd](exec[make]@/(" + alpineID + "))"
	if res.Ref != want {
		t.Errorf("Ref = %v, want %v", res.Ref, want)
	}
	if err := res.Key.Validate(); err != nil {
		t.Errorf("Key = %q: %v", res.Key, err)
	}
	wantCalls := []string{"source " + alpineID, "exec make", "file mkfile /etc/motd"}
	if got := w.callList(); !slices.Equal(got, wantCalls) {
		t.Errorf("calls = %q, want %q", got, wantCalls)
	}
	wantEvents := []string{
		"started " + alpineID, "done " + alpineID,
		"started make", "done make",
		"started mkfile /etc/motd", "done mkfile /etc/motd",
	}
	if got := rec.list(); !slices.Equal(got, wantEvents) {
		t.Errorf("events = %q, want %q", got, wantEvents)
	}
}

func TestSolveScratchTarget(t *testing.T) {
	w := newFakeWorker()
	res, err := newSolver(t, w).Solve(testCtx(t), marshal(t, llb.Scratch()))
	if err != nil || res.Ref != nil || res.Key != "" {
		t.Errorf("Solve(scratch) = %+v, %v; want an empty result", res, err)
	}
	if calls := w.callList(); len(calls) != 0 {
		t.Errorf("calls = %q, want none", calls)
	}
}

// TestSolveParallel: the two branches of a merge run at once. Each branch's
// exec waits at a barrier that opens only when both are inside the worker,
// so a solver that runs them one after the other times out.
func TestSolveParallel(t *testing.T) {
	w := newFakeWorker()
	checkNoLeak(t, w)
	w.barrier = newBarrier(2, "build-a", "build-b")
	a := llb.Image(alpineRef).Run(llb.Args([]string{"build-a"})).Root()
	b := llb.Image(busyboxRef).Run(llb.Args([]string{"build-b"})).Root()
	res, err := newSolver(t, w, WithParallelism(2)).Solve(testCtx(t), marshal(t, llb.Merge([]llb.State{a, b})))
	if err != nil {
		t.Fatalf("Solve: %v", err)
	}
	want := "merge(exec[build-a]@/(" + alpineID + "), exec[build-b]@/(" + busyboxID + "))"
	if res.Ref != want {
		t.Errorf("Ref = %v, want %v", res.Ref, want)
	}
	if w.maxRun < 2 {
		t.Errorf("at most %d worker calls ran at once, want 2", w.maxRun)
	}
}

// TestSolveParallelismBound: six independent branches under a limit of 2
// reach 2 worker calls at once (the first two meet at a barrier that opens
// only then) and never more; under a limit of 1, one at a time.
func TestSolveParallelismBound(t *testing.T) {
	var names []string
	var states []llb.State
	for _, n := range []string{"/b1", "/b2", "/b3", "/b4", "/b5", "/b6"} {
		names = append(names, "mkdir "+n)
		states = append(states, llb.Scratch().File(llb.Mkdir(n, 0o755)))
	}
	def := marshal(t, llb.Merge(states))

	w := newFakeWorker()
	checkNoLeak(t, w)
	w.barrier = newBarrier(2, names...)
	if _, err := newSolver(t, w, WithParallelism(2)).Solve(testCtx(t), def); err != nil {
		t.Fatalf("Solve: %v", err)
	}
	if w.maxRun != 2 {
		t.Errorf("parallelism 2: at most %d worker calls ran at once, want 2", w.maxRun)
	}

	w1 := newFakeWorker()
	if _, err := newSolver(t, w1, WithParallelism(1)).Solve(testCtx(t), def); err != nil {
		t.Fatalf("Solve: %v", err)
	}
	if w1.maxRun != 1 {
		t.Errorf("parallelism 1: %d worker calls ran at once", w1.maxRun)
	}
	if n := len(w1.callList()); n != 7 {
		t.Errorf("parallelism 1: %d calls, want 7 (six branches and the merge)", n)
	}
}

// TestSolveSkipsUnneeded: ops of the definition the target does not depend
// on are neither run nor asked for content keys.
func TestSolveSkipsUnneeded(t *testing.T) {
	w := newFakeWorker()
	checkNoLeak(t, w)
	unused := llb.Local("unused-context").File(llb.Mkdir("/stage", 0o755)).Run(llb.Args([]string{"unused-stage"})).Root()
	target := llb.Image(alpineRef).Run(llb.Args([]string{"used"})).Root()
	u, tdef := marshal(t, unused), marshal(t, target)
	// The unused ops (all but their terminal) go first, as a converter
	// that kept an unused stage would write them.
	def := &pb.Definition{Def: append(u.Def[:len(u.Def)-1:len(u.Def)-1], tdef.Def...), Metadata: tdef.Metadata}
	g, err := Load(def)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if g.Len() != 5 {
		t.Fatalf("Len() = %d, want 5 (3 unused, 2 used)", g.Len())
	}
	w.fail["contentkey local://unused-context"] = errors.New("content key of an unneeded source asked for")
	res, err := newSolver(t, w).SolveGraph(testCtx(t), g)
	if err != nil {
		t.Fatalf("Solve: %v", err)
	}
	if res.Ref != "exec[used]@/("+alpineID+")" {
		t.Errorf("Ref = %v", res.Ref)
	}
	for _, c := range w.callList() {
		if strings.Contains(c, "unused") || strings.Contains(c, "/stage") {
			t.Errorf("unneeded op ran: %s", c)
		}
	}
}

// TestSolveSharedOnce: a vertex two branches read runs once.
func TestSolveSharedOnce(t *testing.T) {
	w := newFakeWorker()
	checkNoLeak(t, w)
	shared := llb.Image(alpineRef).Run(llb.Args([]string{"shared"})).Root()
	left := shared.File(llb.Mkdir("/left", 0o755))
	right := shared.File(llb.Mkdir("/right", 0o755))
	st := llb.Merge([]llb.State{left, right, shared.File(llb.Copy(left, "/left", "/copied"))})
	res, err := newSolver(t, w, WithParallelism(8)).Solve(testCtx(t), marshal(t, st))
	if err != nil {
		t.Fatalf("Solve: %v", err)
	}
	for _, name := range []string{alpineID, "shared", "mkdir /left"} {
		if n := w.count(name); n != 1 {
			t.Errorf("%s ran %d times, want 1", name, n)
		}
	}
	s := "exec[shared]@/(" + alpineID + ")"
	want := "merge(file[mkdir /left](" + s + "), file[mkdir /right](" + s + "), file[copy /left /copied](" + s + "))"
	if res.Ref != want {
		t.Errorf("Ref = %v\nwant  %v", res.Ref, want)
	}
}

// TestSolveCache: a hit stops the walk; a change at the top reruns the top
// only; a change at the bottom reruns everything above it.
func TestSolveCache(t *testing.T) {
	cache := newMemCache()
	build := func(cmd, top string) llb.State {
		return llb.Image(alpineRef).Run(llb.Args([]string{cmd})).Root().File(llb.Mkdir(top, 0o755))
	}
	solve := func(st llb.State) (*fakeWorker, *recorder, Result) {
		t.Helper()
		w := newFakeWorker()
		rec := &recorder{}
		res, err := newSolver(t, w, WithCache(cache), WithProgress(rec.record)).Solve(testCtx(t), marshal(t, st))
		if err != nil {
			t.Fatalf("Solve: %v", err)
		}
		return w, rec, res
	}

	w, _, first := solve(build("make", "/a"))
	if n := len(w.callList()); n != 3 {
		t.Fatalf("first solve: %d calls, want 3", n)
	}
	if cache.puts != 3 {
		t.Errorf("first solve: %d cache puts, want 3", cache.puts)
	}

	w, rec, again := solve(build("make", "/a"))
	if calls := w.callList(); len(calls) != 0 {
		t.Errorf("second solve ran %q, want nothing", calls)
	}
	if again.Ref != first.Ref || again.Key != first.Key {
		t.Errorf("second solve = %+v, want the first's %+v", again, first)
	}
	if got := rec.list(); !slices.Equal(got, []string{"cached mkdir /a"}) {
		t.Errorf("second solve events = %q, want only the target cached", got)
	}

	w, rec, _ = solve(build("make", "/b"))
	if got := w.callList(); !slices.Equal(got, []string{"file mkdir /b"}) {
		t.Errorf("top changed: calls = %q, want only the new top", got)
	}
	if got := rec.of(VertexCached); !slices.Equal(got, []string{"make"}) {
		t.Errorf("top changed: cached = %q, want the exec below it", got)
	}

	w, _, _ = solve(build("make install", "/a"))
	want := []string{"exec make install", "file mkdir /a"}
	if got := w.callList(); !slices.Equal(got, want) {
		t.Errorf("middle changed: calls = %q, want %q (the source is cached)", got, want)
	}
}

// TestSolveIgnoreCache: a vertex with the ignore-cache flag runs although
// its key is stored, and so does everything above it; what is below it is
// still taken from the cache.
func TestSolveIgnoreCache(t *testing.T) {
	cache := newMemCache()
	st := func(opts ...llb.ConstraintsOpt) llb.State {
		ro := []llb.RunOption{llb.Args([]string{"apt-get update"})}
		for _, o := range opts {
			ro = append(ro, o)
		}
		return llb.Image(alpineRef).Run(ro...).Root().File(llb.Mkdir("/a", 0o755))
	}
	if _, err := newSolver(t, newFakeWorker(), WithCache(cache)).Solve(testCtx(t), marshal(t, st())); err != nil {
		t.Fatal(err)
	}
	w := newFakeWorker()
	if _, err := newSolver(t, w, WithCache(cache)).Solve(testCtx(t), marshal(t, st(llb.IgnoreCache))); err != nil {
		t.Fatal(err)
	}
	want := []string{"exec apt-get update", "file mkdir /a"}
	if got := w.callList(); !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q", got, want)
	}
}

// TestSolveFailureCancels: when one branch fails, the other, still running,
// sees its context cancelled; the merge never runs; Solve returns the
// failing vertex's error, not the cancellation.
func TestSolveFailureCancels(t *testing.T) {
	w := newFakeWorker()
	checkNoLeak(t, w)
	rec := &recorder{}
	boom := errors.New("exit status 2")
	w.blockUntilCancel["sleep infinity"] = true
	w.waitFor["make broken"] = "sleep infinity" // fail only once the sibling runs
	w.fail["make broken"] = boom
	a := llb.Image(alpineRef).Run(llb.Args([]string{"sleep", "infinity"})).Root().
		Run(llb.Args([]string{"echo", "after"})).Root()
	b := llb.Image(busyboxRef).Run(llb.Args([]string{"make", "broken"})).Root()
	ctx := testCtx(t)
	_, err := newSolver(t, w, WithParallelism(4), WithProgress(rec.record)).Solve(ctx, marshal(t, llb.Merge([]llb.State{a, b})))
	if ctx.Err() != nil {
		t.Errorf("the sibling stopped only when the test's deadline passed")
	}
	if err == nil {
		t.Fatal("Solve succeeded, want the failure of make broken")
	}
	if !errors.Is(err, boom) {
		t.Errorf("error %q does not wrap the worker's error", err)
	}
	var ve *VertexError
	if !errors.As(err, &ve) || ve.Kind != KindExec || ve.Name != "make broken" {
		t.Fatalf("error = %#v, want a *VertexError of exec make broken", err)
	}
	if want := `exec "make broken": exit status 2`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	w.mu.Lock()
	cancelled := w.cancelled["sleep infinity"]
	w.mu.Unlock()
	if !cancelled {
		t.Error("the running sibling was not cancelled")
	}
	if n := w.count("merge"); n != 0 {
		t.Errorf("merge ran %d times after a failed input", n)
	}
	if n := w.count("echo after"); n != 0 {
		t.Errorf("echo after, below the cancelled sibling, ran %d times", n)
	}
	// Only the real failure is a failure: the sibling that was running is
	// cancelled, and what waited for it reports nothing.
	if got := rec.of(VertexFailed); !slices.Equal(got, []string{"make broken"}) {
		t.Errorf("failed events = %q, want only make broken", got)
	}
	if got := rec.of(VertexCanceled); !slices.Equal(got, []string{"sleep infinity"}) {
		t.Errorf("canceled events = %q, want the running sibling", got)
	}
	for _, s := range rec.list() {
		if strings.HasSuffix(s, " echo after") || strings.HasSuffix(s, " merge") {
			t.Errorf("event %q for a vertex that never started", s)
		}
	}
	for _, e := range rec.events {
		if e.Kind != VertexCanceled {
			continue
		}
		var cause *VertexError
		if !errors.As(e.Err, &cause) || cause.Name != "make broken" || !errors.Is(e.Err, boom) {
			t.Errorf("canceled event's Err = %v, want the failure of make broken that cancelled it", e.Err)
		}
		if e.Key == "" {
			t.Error("canceled event has no key")
		}
	}
}

// TestSolveCallerCancel: cancelling the caller's context stops a blocked op
// and Solve returns an error that is context.Canceled.
func TestSolveCallerCancel(t *testing.T) {
	w := newFakeWorker()
	checkNoLeak(t, w)
	w.blockUntilCancel["sleep"] = true
	ctx, cancel := context.WithCancel(testCtx(t))
	go func() {
		<-w.enteredCh("sleep")
		cancel()
	}()
	rec := &recorder{}
	_, err := newSolver(t, w, WithProgress(rec.record)).Solve(ctx, marshal(t, llb.Image(alpineRef).Run(llb.Args([]string{"sleep"})).Root()))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Solve error = %v, want context.Canceled", err)
	}
	if errors.As(err, new(*VertexError)) {
		t.Errorf("Solve error = %#v, want the caller's cancellation, not a vertex's failure", err)
	}
	if got := rec.of(VertexFailed); len(got) != 0 {
		t.Errorf("failed events = %q, want none", got)
	}
	if got := rec.of(VertexCanceled); !slices.Equal(got, []string{"sleep"}) {
		t.Errorf("canceled events = %q, want the running sleep", got)
	}
}

func TestSolveRefusals(t *testing.T) {
	merge := llb.Merge([]llb.State{llb.Image(alpineRef), llb.Image(busyboxRef)})
	arm := llb.Image(alpineRef, llb.Platform(ocispecs.Platform{OS: "linux", Architecture: "arm64"})).Run(llb.Args([]string{"true"})).Root()
	tests := []struct {
		name  string
		w     func(*fakeWorker) Worker
		st    llb.State
		opts  []Option
		setup func(*fakeWorker)
		want  string
	}{
		{name: "merge without Merger", w: func(f *fakeWorker) Worker { return plainWorker{f} }, st: merge,
			want: `merge "merge (` + alpineID + `, docker-image://docker.io/l…": the worker (build.plainWorker) cannot merge: it does not implement build.Merger`},
		{name: "diff without Differ", w: func(f *fakeWorker) Worker { return plainWorker{f} }, st: llb.Diff(llb.Image(alpineRef), llb.Image(busyboxRef)),
			want: "cannot diff: it does not implement build.Differ"},
		{name: "foreign platform", st: arm, opts: []Option{WithPlatform("linux", "amd64", "")},
			want: "the op is for linux/arm64; this solver runs ops for linux/amd64"},
		{name: "content key error", st: llb.Image(alpineRef).File(llb.Copy(llb.Local("ctx"), "/", "/")),
			setup: func(f *fakeWorker) { f.fail["contentkey local://ctx"] = errors.New("reading ctx: permission denied") },
			want:  `source "local://ctx": computing the content key: reading ctx: permission denied`},
		{name: "content key not a digest", st: llb.Local("ctx"),
			setup: func(f *fakeWorker) { f.content["local://ctx"] = "abc" },
			want:  `the worker's content key "abc" is not a digest`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeWorker()
			checkNoLeak(t, f)
			if tc.setup != nil {
				tc.setup(f)
			}
			var w Worker = f
			if tc.w != nil {
				w = tc.w(f)
			}
			_, err := newSolver(t, w, tc.opts...).Solve(testCtx(t), marshal(t, tc.st))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Solve error = %v, want it to contain %q", err, tc.want)
			}
			var ve *VertexError
			if !errors.As(err, &ve) {
				t.Errorf("error %T is not a *VertexError", err)
			}
			if calls := f.callList(); len(calls) != 0 {
				t.Errorf("ops ran before the refusal: %q", calls)
			}
		})
	}
}

func TestSolveWrongOutputCount(t *testing.T) {
	w := newFakeWorker()
	checkNoLeak(t, w)
	w.outputs["two"] = 1
	es := llb.Image(alpineRef).Run(llb.Args([]string{"two"}))
	out := es.AddMount("/out", llb.Scratch())
	_, err := newSolver(t, w).Solve(testCtx(t), marshal(t, out))
	if err == nil || !strings.Contains(err.Error(), "the worker returned 1 outputs; the op makes 2") {
		t.Errorf("Solve error = %v, want the output count error", err)
	}
}

// TestSolveOutputs: a dependant reads the output its input names, and the
// result is the target's output, not output 0.
func TestSolveOutputs(t *testing.T) {
	w := newFakeWorker()
	es := llb.Image(alpineRef).Run(llb.Args([]string{"build"}))
	out := es.AddMount("/out", llb.Image(busyboxRef))
	res, err := newSolver(t, w).Solve(testCtx(t), marshal(t, out.File(llb.Mkdir("/x", 0o755))))
	if err != nil {
		t.Fatal(err)
	}
	want := "file[mkdir /x](exec[build]@/out(" + busyboxID + "))"
	if res.Ref != want {
		t.Errorf("Ref = %v, want %v", res.Ref, want)
	}
	res, err = newSolver(t, w).Solve(testCtx(t), marshal(t, out))
	if err != nil {
		t.Fatal(err)
	}
	if want := "exec[build]@/out(" + busyboxID + ")"; res.Ref != want {
		t.Errorf("Ref = %v, want %v", res.Ref, want)
	}
}

func TestSolveDiff(t *testing.T) {
	w := newFakeWorker()
	base := llb.Image(alpineRef)
	res, err := newSolver(t, w).Solve(testCtx(t), marshal(t, llb.Diff(base, base.Run(llb.Args([]string{"make"})).Root())))
	if err != nil {
		t.Fatal(err)
	}
	want := "diff(" + alpineID + " -> exec[make]@/(" + alpineID + "))"
	if res.Ref != want {
		t.Errorf("Ref = %v, want %v", res.Ref, want)
	}
}

func TestCacheErrors(t *testing.T) {
	w := newFakeWorker()
	checkNoLeak(t, w)
	c := &failingCache{getErr: errors.New("store locked")}
	_, err := newSolver(t, w, WithCache(c)).Solve(testCtx(t), marshal(t, llb.Image(alpineRef)))
	if err == nil || !strings.Contains(err.Error(), "looking up cache key sha256:") || !strings.Contains(err.Error(), "store locked") {
		t.Errorf("Solve error = %v, want the cache lookup error", err)
	}
	c = &failingCache{putErr: errors.New("disk full")}
	_, err = newSolver(t, w, WithCache(c)).Solve(testCtx(t), marshal(t, llb.Image(alpineRef)))
	if err == nil || !strings.Contains(err.Error(), "storing the outputs under cache key") {
		t.Errorf("Solve error = %v, want the cache store error", err)
	}
	c = &failingCache{hit: []Ref{"a", "b"}}
	_, err = newSolver(t, w, WithCache(c)).Solve(testCtx(t), marshal(t, llb.Image(alpineRef)))
	if err == nil || !strings.Contains(err.Error(), "the cache holds 2 outputs") {
		t.Errorf("Solve error = %v, want the output count error", err)
	}
}

type failingCache struct {
	getErr, putErr error
	hit            []Ref
}

func (c *failingCache) Get(context.Context, digest.Digest) ([]Ref, bool, error) {
	return c.hit, c.hit != nil, c.getErr
}

func (c *failingCache) Put(context.Context, digest.Digest, []Ref) error { return c.putErr }

func TestNewSolverOptions(t *testing.T) {
	w := newFakeWorker()
	if _, err := NewSolver(nil); err == nil {
		t.Error("NewSolver(nil) succeeded")
	}
	if _, err := NewSolver(w, WithParallelism(0)); err == nil || !strings.Contains(err.Error(), "parallelism 0: it must be at least 1") {
		t.Errorf("WithParallelism(0): err = %v", err)
	}
	if _, err := NewSolver(w, WithPlatform("linux", "", "")); err == nil {
		t.Error("WithPlatform without an architecture succeeded")
	}
	s := newSolver(t, w)
	if s.opts.parallelism != runtime.GOMAXPROCS(0) {
		t.Errorf("default parallelism = %d, want GOMAXPROCS %d", s.opts.parallelism, runtime.GOMAXPROCS(0))
	}
}

func TestVertexErrorShortName(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct{ name, want string }{
		{"make", `exec "make": boom`},
		{"/bin/sh -c set -e\napt-get update\n", `exec "/bin/sh -c set -e …": boom`},
		{long, `exec "` + strings.Repeat("x", 79) + `…": boom`},
	}
	for _, tc := range tests {
		e := &VertexError{Kind: KindExec, Name: tc.name, Err: errors.New("boom")}
		if got := e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestSolverKeys(t *testing.T) {
	w := newFakeWorker()
	st := llb.Image(alpineRef).Run(llb.Args([]string{"make"})).Root()
	def := marshal(t, st)
	g, err := Load(def)
	if err != nil {
		t.Fatal(err)
	}
	s := newSolver(t, w)
	keys, err := s.Keys(testCtx(t), g)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("Keys = %v, want the source's and the exec's", keys)
	}
	target, err := s.Key(testCtx(t), g)
	if err != nil {
		t.Fatal(err)
	}
	if keys[g.Target.Vertex.Digest] != target {
		t.Errorf("Keys[target] = %s, Key = %s", keys[g.Target.Vertex.Digest], target)
	}
	if calls := w.callList(); len(calls) != 0 {
		t.Errorf("Keys ran %q", calls)
	}
}

// vertexWorker records the vertex each Exec call's context names.
type vertexWorker struct {
	*fakeWorker
	mu   sync.Mutex
	seen []string
}

func (w *vertexWorker) Exec(ctx context.Context, op *pb.ExecOp, inputs []Ref) ([]Ref, error) {
	w.mu.Lock()
	if v := VertexFrom(ctx); v != nil {
		w.seen = append(w.seen, v.Name)
	} else {
		w.seen = append(w.seen, "<nil>")
	}
	w.mu.Unlock()
	return w.fakeWorker.Exec(ctx, op, inputs)
}

func TestVertexFrom(t *testing.T) {
	if v := VertexFrom(context.Background()); v != nil {
		t.Errorf("VertexFrom(Background) = %v", v)
	}
	w := &vertexWorker{fakeWorker: newFakeWorker()}
	st := llb.Image(alpineRef).Run(llb.Args([]string{"make"}), llb.WithCustomName("[1/2] RUN make")).Root()
	if _, err := newSolver(t, w).Solve(testCtx(t), marshal(t, st)); err != nil {
		t.Fatal(err)
	}
	if want := []string{"[1/2] RUN make"}; !slices.Equal(w.seen, want) {
		t.Errorf("vertices seen by Exec = %q, want %q", w.seen, want)
	}
}
