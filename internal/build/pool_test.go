package build

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
)

// gatedCache is a memCache whose Gets of key wait, the first time each
// solve asks (solveIDKey in the context), until every one of n solves has
// asked, and answers what the cache held when it asked: solves that all miss key are sure to have missed it before any
// stores it.
type gatedCache struct {
	*memCache
	key  digest.Digest
	n    int
	mu   sync.Mutex
	seen map[int]bool
	open chan struct{}
}

type solveIDKey struct{}

func (c *gatedCache) Get(ctx context.Context, key digest.Digest) ([]Ref, bool, error) {
	refs, ok, err := c.memCache.Get(ctx, key)
	if id, isSolve := ctx.Value(solveIDKey{}).(int); isSolve && key == c.key {
		c.mu.Lock()
		first := !c.seen[id]
		c.seen[id] = true
		if first && len(c.seen) == c.n {
			close(c.open)
		}
		c.mu.Unlock()
		if first {
			select {
			case <-c.open:
			case <-ctx.Done():
				return nil, false, fmt.Errorf("gate for %s: %w", key, ctx.Err())
			}
		}
	}
	return refs, ok, err
}

// execKeyOf is the cache key of def's exec vertex, as a solver of default
// options computes it.
func execKeyOf(t *testing.T, def *pb.Definition) digest.Digest {
	t.Helper()
	g, err := Load(def)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := newSolver(t, newFakeWorker()).Keys(testCtx(t), g)
	if err != nil {
		t.Fatal(err)
	}
	for d, k := range keys {
		if v := g.Vertex(d); v != nil && v.Kind == KindExec {
			return k
		}
	}
	t.Fatal("no exec vertex in the definition")
	return ""
}

// TestSolvePoolSharedKey: two solves sharing a Pool both miss the exec's key
// at once; the exec runs once, and the other solve takes it from the cache
// once it holds the key's lock. Without the Pool both run it.
func TestSolvePoolSharedKey(t *testing.T) {
	exec := llb.Image(alpineRef).Run(llb.Args([]string{"make"})).Root()
	defA := marshal(t, exec.File(llb.Mkdir("/a", 0o755)))
	defB := marshal(t, exec.File(llb.Mkdir("/b", 0o755)))

	execKey := execKeyOf(t, defA)

	for _, pooled := range []bool{true, false} {
		t.Run(fmt.Sprintf("pool=%v", pooled), func(t *testing.T) {
			cache := &gatedCache{memCache: newMemCache(), key: execKey, n: 2, seen: map[int]bool{}, open: make(chan struct{})}
			pool, err := NewPool(2)
			if err != nil {
				t.Fatal(err)
			}
			workers := []*fakeWorker{newFakeWorker(), newFakeWorker()}
			recs := []*recorder{{}, {}}
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, def := range []*pb.Definition{defA, defB} {
				opts := []Option{WithCache(cache), WithProgress(recs[i].record)}
				if pooled {
					opts = append(opts, WithPool(pool))
				}
				s := newSolver(t, workers[i], opts...)
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = s.Solve(context.WithValue(testCtx(t), solveIDKey{}, i), def)
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("solve %d: %v", i, err)
				}
			}
			runs := workers[0].counts["make"] + workers[1].counts["make"]
			cached := len(recs[0].of(VertexCached)) + len(recs[1].of(VertexCached))
			switch {
			case pooled && (runs != 1 || cached < 1):
				t.Errorf("with a pool: make ran %d times (want 1), %d vertices cached (want at least 1)", runs, cached)
			case !pooled && runs != 2:
				t.Errorf("without a pool: make ran %d times, want 2 (the gate makes both miss)", runs)
			}
		})
	}
}

// TestPoolSlots: the Pool's bound holds across solves: two solves of three
// independent branches each, under a pool of 2, never run more than 2 worker
// calls at once in all.
func TestPoolSlots(t *testing.T) {
	pool, err := NewPool(2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewPool(0); err == nil {
		t.Error("NewPool(0) succeeded")
	}
	var mu sync.Mutex
	running, most := 0, 0
	track := func(d int) {
		mu.Lock()
		running += d
		most = max(most, running)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for i := range 2 {
		var states []llb.State
		for j := range 3 {
			states = append(states, llb.Scratch().File(llb.Mkdir(fmt.Sprintf("/s%d-%d", i, j), 0o755)))
		}
		w := &countingWorker{fakeWorker: newFakeWorker(), track: track}
		s := newSolver(t, w, WithPool(pool))
		def := marshal(t, llb.Merge(states))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Solve(testCtx(t), def); err != nil {
				t.Errorf("Solve: %v", err)
			}
		}()
	}
	wg.Wait()
	if most > 2 {
		t.Errorf("%d worker calls ran at once across the solves, want at most 2", most)
	}
}

// countingWorker reports each file op's start and end to track, and holds
// the op for a moment so that calls that may overlap do.
type countingWorker struct {
	*fakeWorker
	track func(delta int)
}

func (w *countingWorker) File(ctx context.Context, op *pb.FileOp, in []Ref) ([]Ref, error) {
	w.track(1)
	defer w.track(-1)
	time.Sleep(20 * time.Millisecond)
	return w.fakeWorker.File(ctx, op, in)
}

// TestSolvePoolSharedFailure: two solves sharing a Pool reach the same exec;
// it fails in the one that runs it, and the other, waiting for the key,
// fails with the same error instead of running it again. A forced exec
// (ignore-cache) shared the same way runs once too. Once nobody waits, the
// outcome is forgotten: a later solve runs the key again.
func TestSolvePoolSharedFailure(t *testing.T) {
	for _, forced := range []bool{false, true} {
		t.Run(fmt.Sprintf("forced=%v", forced), func(t *testing.T) {
			var opts []llb.RunOption
			opts = append(opts, llb.Args([]string{"make"}))
			if forced {
				opts = append(opts, llb.IgnoreCache)
			}
			exec := llb.Image(alpineRef).Run(opts...).Root()
			defA := marshal(t, exec.File(llb.Mkdir("/a", 0o755)))
			defB := marshal(t, exec.File(llb.Mkdir("/b", 0o755)))
			execKey := execKeyOf(t, defA)
			pool, err := NewPool(2)
			if err != nil {
				t.Fatal(err)
			}
			// Both solves ask the cache for the exec's key (forced ones
			// do not ask: the gate then lets the first through alone).
			n := 2
			if forced {
				n = 1
			}
			cache := &gatedCache{memCache: newMemCache(), key: execKey, n: n, seen: map[int]bool{}, open: make(chan struct{})}
			workers := []*fakeWorker{newFakeWorker(), newFakeWorker()}
			boom := errors.New("make: *** [all] Error 2")
			if !forced {
				workers[0].fail["make"], workers[1].fail["make"] = boom, boom
			}
			// The exec that runs holds the key until the other solve
			// waits for it.
			waiting := func(ctx context.Context) {
				for ctx.Err() == nil {
					pool.mu.Lock()
					l := pool.keys[execKey]
					n := 0
					if l != nil {
						n = l.refs
					}
					pool.mu.Unlock()
					if n == 2 {
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, def := range []*pb.Definition{defA, defB} {
				w := &slowExec{fakeWorker: workers[i], wait: waiting}
				s := newSolver(t, w, WithCache(cache), WithPool(pool))
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = s.Solve(context.WithValue(testCtx(t), solveIDKey{}, i), def)
				}()
			}
			wg.Wait()
			runs := workers[0].counts["make"] + workers[1].counts["make"]
			if runs != 1 {
				t.Errorf("make ran %d times, want once", runs)
			}
			for i, err := range errs {
				switch {
				case forced && err != nil:
					t.Errorf("solve %d: %v", i, err)
				case !forced && !errors.Is(err, boom):
					t.Errorf("solve %d = %v, want the exec's error %v", i, err, boom)
				}
			}
			// Nobody waits any more: a new solve runs the key again.
			w := newFakeWorker()
			if !forced {
				w.fail["make"] = boom
			}
			_, err = newSolver(t, w, WithCache(newMemCache()), WithPool(pool)).Solve(testCtx(t), defA)
			if w.counts["make"] != 1 || (!forced && !errors.Is(err, boom)) {
				t.Errorf("a later solve: make ran %d times (want 1), error %v", w.counts["make"], err)
			}
		})
	}
}

// slowExec is a fakeWorker whose exec ops first call wait: an exec that
// takes until another solve has reached the same key.
type slowExec struct {
	*fakeWorker
	wait func(context.Context)
}

func (w *slowExec) Exec(ctx context.Context, op *pb.ExecOp, in []Ref) ([]Ref, error) {
	w.wait(ctx)
	return w.fakeWorker.Exec(ctx, op, in)
}
