package build

import (
	"context"
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

// TestSolvePoolSharedKey: two solves sharing a Pool both miss the exec's key
// at once; the exec runs once, and the other solve takes it from the cache
// once it holds the key's lock. Without the Pool both run it.
func TestSolvePoolSharedKey(t *testing.T) {
	exec := llb.Image(alpineRef).Run(llb.Args([]string{"make"})).Root()
	defA := marshal(t, exec.File(llb.Mkdir("/a", 0o755)))
	defB := marshal(t, exec.File(llb.Mkdir("/b", 0o755)))

	// The exec's key, from a solver of the same options.
	g, err := Load(defA)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := newSolver(t, newFakeWorker()).Keys(testCtx(t), g)
	if err != nil {
		t.Fatal(err)
	}
	var execKey digest.Digest
	for d, k := range keys {
		if v := g.Vertex(d); v != nil && v.Kind == KindExec {
			execKey = k
		}
	}
	if execKey == "" {
		t.Fatal("no exec vertex in the definition")
	}

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
