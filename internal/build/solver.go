package build

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
)

// Solver runs graphs on a Worker. A Solver holds no per-solve state: Solve
// may be called concurrently (the Worker and the Cache then see the calls of
// all solves, and a vertex shared by two solves may run in both).
type Solver struct {
	worker Worker
	opts   options
}

// Option configures a Solver.
type Option func(*options) error

type options struct {
	cache       Cache
	parallelism int
	progress    func(Event)
	platform    platform
	salt        string
	pool        *Pool // WithPool; nil: the solve's own slots, no key locks
}

// WithCache looks every vertex up in c before running it and stores what it
// makes there.
// The default is no cache: every vertex the target needs runs.
func WithCache(c Cache) Option {
	return func(o *options) error {
		o.cache = c
		return nil
	}
}

// WithParallelism sets how many Worker calls may run at a time; n must be
// at least 1.
// The default is runtime.GOMAXPROCS(0).
func WithParallelism(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("parallelism %d: it must be at least 1", n)
		}
		o.parallelism = n
		return nil
	}
}

// WithProgress calls fn for each vertex event (see EventKind). Calls are
// made one at a time, from the solve's goroutines: fn must not block long.
// The default is no events.
func WithProgress(fn func(Event)) Option {
	return func(o *options) error {
		o.progress = fn
		return nil
	}
}

// WithPlatform sets the platform the Worker runs ops for, e.g. "linux" and
// "arm64". An op that names another OS or architecture fails the solve before
// anything runs; ops without a platform run for this one, and it is mixed
// into their keys.
// The default is the running program's, runtime.GOOS and runtime.GOARCH.
func WithPlatform(os, arch, variant string) Option {
	return func(o *options) error {
		if os == "" || arch == "" {
			return fmt.Errorf("platform %q/%q: both the OS and the architecture are needed", os, arch)
		}
		o.platform = platform{os: os, arch: arch, variant: variant}
		return nil
	}
}

// WithKeySalt mixes s into every cache key: settings of the Worker that
// change what it makes of the same op (the mtime layers are clamped to, the
// layer format), so that results made under other settings are not reused.
// The default is "".
func WithKeySalt(s string) Option {
	return func(o *options) error {
		o.salt = s
		return nil
	}
}

// platform is an OCI platform's OS, architecture and variant.
type platform struct{ os, arch, variant string }

// NewSolver returns a Solver that runs ops on w.
func NewSolver(w Worker, opts ...Option) (*Solver, error) {
	if w == nil {
		return nil, errors.New("new solver: the worker is nil")
	}
	o := options{
		parallelism: runtime.GOMAXPROCS(0),
		platform:    platform{os: runtime.GOOS, arch: runtime.GOARCH},
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("new solver: %w", err)
		}
	}
	return &Solver{worker: w, opts: o}, nil
}

// EventKind says what happened to a vertex.
type EventKind int

const (
	// VertexCached: the vertex's outputs came from the Cache; nothing
	// below it runs for it.
	VertexCached EventKind = iota + 1
	// VertexStarted: the vertex's inputs are ready and its op is handed to
	// the Worker.
	VertexStarted
	// VertexDone: the op succeeded and its outputs are stored.
	VertexDone
	// VertexFailed: the op, its cache lookup or its cache store failed;
	// Event.Err says why.
	VertexFailed
	// VertexCanceled: the op was running when the solve was cancelled,
	// by another vertex's failure or by the caller's context, and it
	// ended unfinished (BuildKit's progress shows such a vertex as
	// CANCELED). Event.Err is the cancellation's cause: the failing
	// vertex's *VertexError, or the caller's context's error. A vertex
	// that had not started when the solve was cancelled reports nothing.
	VertexCanceled
)

// String returns "cached", "started", "done", "failed" or "canceled".
func (k EventKind) String() string {
	switch k {
	case VertexCached:
		return "cached"
	case VertexStarted:
		return "started"
	case VertexDone:
		return "done"
	case VertexFailed:
		return "failed"
	case VertexCanceled:
		return "canceled"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one step of one vertex. A vertex that runs reports VertexStarted
// then VertexDone, VertexFailed or VertexCanceled; one found in the Cache
// reports VertexCached only; one nothing needs (it is below a cache hit, or
// the target does not depend on it) reports nothing.
type Event struct {
	Kind   EventKind
	Vertex *Vertex
	// Key is the vertex's cache key.
	Key digest.Digest
	// Err is set for VertexFailed (why the vertex failed) and
	// VertexCanceled (why the solve was cancelled).
	Err error
	// Outputs are the op's results, for VertexDone only.
	Outputs []Ref
}

// VertexError is the error of a vertex whose op failed: it says which vertex
// and holds the cause.
type VertexError struct {
	Digest digest.Digest
	Kind   OpKind
	Name   string
	Err    error
}

// Error returns, e.g., `exec "/bin/sh -c make": exit status 2`. A long or
// multi-line name (a heredoc script) is cut to its first line, at most
// 80 characters; Name holds all of it.
func (e *VertexError) Error() string {
	return fmt.Sprintf("%s %q: %v", e.Kind, shortName(e.Name), e.Err)
}

func (e *VertexError) Unwrap() error { return e.Err }

// shortName returns the first line of name, cut to 80 characters.
func shortName(name string) string {
	const limit = 80
	first, _, multi := strings.Cut(name, "\n")
	if r := []rune(first); len(r) > limit {
		return string(r[:limit-1]) + "…"
	}
	if multi {
		return first + " …"
	}
	return first
}

// Result is what a solve made.
type Result struct {
	// Ref is the target output's result; nil for an empty target.
	Ref Ref
	// Key is the cache key of the target's vertex; "" for an empty target.
	Key digest.Digest
}

// Solve loads def (see Load) and solves it (see SolveGraph).
func (s *Solver) Solve(ctx context.Context, def *pb.Definition) (Result, error) {
	g, err := Load(def)
	if err != nil {
		return Result{}, err
	}
	return s.SolveGraph(ctx, g)
}

// SolveGraph runs what g's target needs and returns the target's result.
//
// Before anything runs it checks every needed vertex (its platform, whether
// the Worker can do merges and diffs) and computes every needed vertex's key,
// asking the Worker for the content keys of sources. It then walks from the
// target down: a vertex found in the Cache stops the walk there; one not
// found first resolves its inputs, in parallel, then runs on the Worker and
// is stored. A vertex whose op carries the ignore-cache flag is not looked up,
// and neither is any vertex that depends on it: a result built on a fresh
// input is made afresh, then stored over the old.
//
// The first failure cancels the context of the Worker calls still running
// and is returned as a *VertexError; those calls report VertexCanceled, not
// failures of their own. When the caller's context ends first, SolveGraph
// returns its cause. SolveGraph returns only after every goroutine it
// started has ended.
func (s *Solver) SolveGraph(ctx context.Context, g *Graph) (Result, error) {
	if g.Target.Vertex == nil {
		return Result{}, nil
	}
	x, err := s.prepare(ctx, g)
	if err != nil {
		return Result{}, err
	}
	defer x.cancel(nil)
	st := x.start(g.Target.Vertex)
	// Every vertex goroutine ends: on success, once its inputs have; on a
	// failure, once the cancellation reaches its Worker call.
	x.wg.Wait()
	if x.err != nil {
		return Result{}, x.err
	}
	if st.err != nil {
		return Result{}, st.err // the caller's context ended
	}
	return Result{Ref: st.refs[g.Target.Output], Key: x.keys[g.Target.Vertex]}, nil
}

// Key returns the cache key of g's target without running anything: it
// checks the needed vertices and asks the Worker for the content keys of
// sources, as SolveGraph does first. An empty target has the key "".
func (s *Solver) Key(ctx context.Context, g *Graph) (digest.Digest, error) {
	if g.Target.Vertex == nil {
		return "", nil
	}
	x, err := s.prepare(ctx, g)
	if err != nil {
		return "", err
	}
	x.cancel(nil)
	return x.keys[g.Target.Vertex], nil
}

// Keys returns the cache key of every vertex g's target needs, by vertex
// digest, without running anything, as Key does for the target. A caller
// can look the vertices up in its Cache with them, e.g. to learn what each
// op of a cached target made.
func (s *Solver) Keys(ctx context.Context, g *Graph) (map[digest.Digest]digest.Digest, error) {
	if g.Target.Vertex == nil {
		return map[digest.Digest]digest.Digest{}, nil
	}
	x, err := s.prepare(ctx, g)
	if err != nil {
		return nil, err
	}
	x.cancel(nil)
	keys := make(map[digest.Digest]digest.Digest, len(x.keys))
	for v, k := range x.keys {
		keys[v.Digest] = k
	}
	return keys, nil
}

// vertexKey is the context key of the vertex a Worker call runs for.
type vertexCtxKey struct{}

// VertexFrom returns the vertex whose op a Worker call runs, from the
// context the Solver passes to the Worker; nil for any other context. A
// Worker can use it to attribute what an op prints to its vertex.
func VertexFrom(ctx context.Context) *Vertex {
	v, _ := ctx.Value(vertexCtxKey{}).(*Vertex)
	return v
}

// solve is the state of one SolveGraph.
type solve struct {
	s      *Solver
	ctx    context.Context
	cancel context.CancelCauseFunc
	sem    chan struct{}

	// Set by prepare, read-only afterwards.
	keys   map[*Vertex]digest.Digest
	forced map[*Vertex]bool // not looked up: it or an input ignores the cache
	states map[*Vertex]*vertexState

	wg      sync.WaitGroup
	errOnce sync.Once
	err     error // the first failure; written once, read after wg.Wait

	progressMu sync.Mutex
}

// vertexState is the run of one vertex: started once, done when done is
// closed, then refs or err is set.
type vertexState struct {
	once sync.Once
	done chan struct{}
	refs []Ref
	err  error
}

// prepare checks the vertices g's target needs and computes their keys.
func (s *Solver) prepare(ctx context.Context, g *Graph) (*solve, error) {
	cctx, cancel := context.WithCancelCause(ctx)
	x := &solve{
		s:      s,
		ctx:    cctx,
		cancel: cancel,
		sem:    s.slots(),
		keys:   map[*Vertex]digest.Digest{},
		forced: map[*Vertex]bool{},
		states: map[*Vertex]*vertexState{},
	}
	order := needed(g.Target.Vertex)
	for _, v := range order {
		if err := s.check(v); err != nil {
			cancel(nil)
			return nil, &VertexError{Digest: v.Digest, Kind: v.Kind, Name: v.Name, Err: err}
		}
		x.states[v] = &vertexState{done: make(chan struct{})}
	}
	content, err := x.contentKeys(order)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	for _, v := range order {
		ins := make([]digest.Digest, len(v.Inputs))
		forced := v.Metadata.IgnoreCache
		for i, in := range v.Inputs {
			ins[i] = x.keys[in.Vertex]
			forced = forced || x.forced[in.Vertex]
		}
		if err := x.selectionKeys(v, ins); err != nil {
			cancel(nil)
			return nil, &VertexError{Digest: v.Digest, Kind: v.Kind, Name: v.Name, Err: fmt.Errorf("computing the cache key: %w", err)}
		}
		k, err := vertexKey(v, ins, content[v], s.platformOf(v), s.opts.salt)
		if err != nil {
			cancel(nil)
			return nil, &VertexError{Digest: v.Digest, Kind: v.Kind, Name: v.Name, Err: fmt.Errorf("computing the cache key: %w", err)}
		}
		x.keys[v], x.forced[v] = k, forced
	}
	return x, nil
}

// needed returns the vertices target depends on, and target, inputs before
// the vertices that read them.
func needed(target *Vertex) []*Vertex {
	var order []*Vertex
	seen := map[*Vertex]bool{}
	var visit func(v *Vertex)
	visit = func(v *Vertex) {
		if seen[v] {
			return
		}
		seen[v] = true
		for _, in := range v.Inputs {
			visit(in.Vertex)
		}
		order = append(order, v)
	}
	visit(target)
	return order
}

// check fails for a vertex this solver cannot run with its Worker.
func (s *Solver) check(v *Vertex) error {
	if p := v.Op.Platform; p != nil && (p.OS != s.opts.platform.os || p.Architecture != s.opts.platform.arch) {
		return fmt.Errorf("the op is for %s; this solver runs ops for %s/%s", platformString(p.OS, p.Architecture, p.Variant), s.opts.platform.os, s.opts.platform.arch)
	}
	switch v.Kind {
	case KindMerge:
		if _, ok := s.worker.(Merger); !ok {
			return fmt.Errorf("the worker (%T) cannot merge: it does not implement build.Merger", s.worker)
		}
	case KindDiff:
		if _, ok := s.worker.(Differ); !ok {
			return fmt.Errorf("the worker (%T) cannot diff: it does not implement build.Differ", s.worker)
		}
	}
	return nil
}

// platformOf returns the platform v runs for.
func (s *Solver) platformOf(v *Vertex) string {
	if p := v.Op.Platform; p != nil {
		return platformString(p.OS, p.Architecture, p.Variant)
	}
	p := s.opts.platform
	return platformString(p.os, p.arch, p.variant)
}

// selectionKeys replaces, in ins (v's input keys), the key of every source
// input that v, a file op, reads only as the source of copies, by the
// Worker's SelectionKey of the copies' source paths (see Selector), when
// the Worker is a Selector and can tell.
func (x *solve) selectionKeys(v *Vertex, ins []digest.Digest) error {
	sel, ok := x.s.worker.(Selector)
	f := v.Op.GetFile()
	if !ok || f == nil {
		return nil
	}
	paths := map[int64][]string{}
	other := map[int64]bool{} // inputs an action builds on or looks owners up in
	for _, a := range f.Actions {
		other[a.Input] = true
		if c := a.GetCopy(); c != nil {
			paths[a.SecondaryInput] = append(paths[a.SecondaryInput], c.Src)
		}
		owner := ActionOwner(a)
		for _, u := range []*pb.UserOpt{owner.GetUser(), owner.GetGroup()} {
			if n := u.GetByName(); n != nil {
				other[n.Input] = true
			}
		}
	}
	for i, in := range v.Inputs {
		src := in.Vertex.Op.GetSource()
		if src == nil || other[int64(i)] || len(paths[int64(i)]) == 0 {
			continue
		}
		var k digest.Digest
		err := x.withSlot(func() (err error) {
			k, err = sel.SelectionKey(x.ctx, src, paths[int64(i)])
			return err
		})
		if err != nil {
			return fmt.Errorf("checksum of what the copies read from %s: %w", in.Vertex.Name, err)
		}
		if k == "" {
			continue
		}
		if err := k.Validate(); err != nil {
			return fmt.Errorf("the worker's selection key %q is not a digest: %w", k, err)
		}
		ins[i] = k
	}
	return nil
}

// contentKeys asks the Worker for the content key of every source in order,
// in parallel.
func (x *solve) contentKeys(order []*Vertex) (map[*Vertex]digest.Digest, error) {
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		content  = map[*Vertex]digest.Digest{}
		firstErr error
	)
	for _, v := range order {
		src := v.Op.GetSource()
		if src == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var k digest.Digest
			err := x.withSlot(func() (err error) {
				k, err = x.s.worker.ContentKey(x.ctx, src)
				return err
			})
			if err == nil && k != "" {
				if verr := k.Validate(); verr != nil {
					err = fmt.Errorf("the worker's content key %q is not a digest: %w", k, verr)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = &VertexError{Digest: v.Digest, Kind: v.Kind, Name: v.Name, Err: fmt.Errorf("computing the content key: %w", err)}
					x.cancel(firstErr)
				}
				return
			}
			content[v] = k
		}()
	}
	wg.Wait()
	return content, firstErr
}

// slots is the channel that bounds a solve's Worker calls: the Pool's when
// there is one, else one of the Solver's parallelism.
func (s *Solver) slots() chan struct{} {
	if s.opts.pool != nil {
		return s.opts.pool.slots
	}
	return make(chan struct{}, s.opts.parallelism)
}

// withSlot runs fn when fewer than the solver's parallelism Worker calls
// are running, or returns the solve's error if it is cancelled first.
func (x *solve) withSlot(fn func() error) error {
	select {
	case x.sem <- struct{}{}:
	case <-x.ctx.Done():
		return context.Cause(x.ctx)
	}
	defer func() { <-x.sem }()
	return fn()
}

// start starts v's run, once, and returns its state.
func (x *solve) start(v *Vertex) *vertexState {
	st := x.states[v]
	st.once.Do(func() {
		x.wg.Add(1)
		go func() {
			defer x.wg.Done()
			defer close(st.done)
			st.refs, st.err = x.run(v)
		}()
	})
	return st
}

// run looks v up in the cache or resolves its inputs and runs it.
func (x *solve) run(v *Vertex) ([]Ref, error) {
	ctx, key, cache := x.ctx, x.keys[v], x.s.opts.cache
	if cache != nil && !x.forced[v] {
		refs, ok, err := cache.Get(ctx, key)
		if err != nil {
			return nil, x.stop(v, false, fmt.Errorf("looking up cache key %s: %w", key, err))
		}
		if ok {
			if len(refs) != v.Outputs {
				return nil, x.fail(v, fmt.Errorf("the cache holds %d outputs under key %s; the op makes %d", len(refs), key, v.Outputs))
			}
			x.event(Event{Kind: VertexCached, Vertex: v, Key: key})
			return refs, nil
		}
	}

	// Start every input before waiting for any, so they run in parallel.
	ins := make([]*vertexState, len(v.Inputs))
	for i, in := range v.Inputs {
		ins[i] = x.start(in.Vertex)
	}
	inputs := make([]Ref, len(v.Inputs))
	for i, st := range ins {
		select {
		case <-st.done:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		if st.err != nil {
			return nil, st.err // already reported, by the input's vertex
		}
		inputs[i] = st.refs[v.Inputs[i].Output]
	}

	var hold *Hold
	if pool := x.s.opts.pool; pool != nil {
		// Another solve of this process may be running the same key:
		// wait for it, then take its outcome, or its result from the
		// cache.
		hold = pool.Lock(key)
		defer hold.Unlock()
		if value, err, ok := hold.Outcome(); ok {
			if err != nil {
				// The same step failed in the solve that ran it.
				return nil, x.stop(v, false, err)
			}
			if refs, _ := value.([]Ref); len(refs) == v.Outputs {
				x.event(Event{Kind: VertexCached, Vertex: v, Key: key})
				return refs, nil
			}
		}
		if cache != nil && !x.forced[v] {
			refs, ok, err := cache.Get(ctx, key)
			if err != nil {
				return nil, x.stop(v, false, fmt.Errorf("looking up cache key %s: %w", key, err))
			}
			if ok && len(refs) == v.Outputs {
				x.event(Event{Kind: VertexCached, Vertex: v, Key: key})
				return refs, nil
			}
		}
	}

	var outs []Ref
	started := false
	err := x.withSlot(func() (err error) {
		started = true
		x.event(Event{Kind: VertexStarted, Vertex: v, Key: key})
		outs, err = x.exec(ctx, v, inputs)
		return err
	})
	if err != nil {
		if hold != nil && started && ctx.Err() == nil {
			// The op's own failure, not this solve's cancellation:
			// solves waiting for the key fail with it too.
			hold.Settle(nil, err)
		}
		return nil, x.stop(v, started, err)
	}
	if len(outs) != v.Outputs {
		return nil, x.fail(v, fmt.Errorf("the worker returned %d outputs; the op makes %d", len(outs), v.Outputs))
	}
	if cache != nil {
		if err := cache.Put(ctx, key, outs); err != nil {
			return nil, x.stop(v, true, fmt.Errorf("storing the outputs under cache key %s: %w", key, err))
		}
	}
	if hold != nil {
		hold.Settle(outs, nil) // a forced run's outputs too: it runs once
	}
	x.event(Event{Kind: VertexDone, Vertex: v, Key: key, Outputs: outs})
	return outs, nil
}

// exec hands v's op to the Worker.
func (x *solve) exec(ctx context.Context, v *Vertex, inputs []Ref) ([]Ref, error) {
	w := x.s.worker
	ctx = context.WithValue(ctx, vertexCtxKey{}, v)
	switch o := v.Op.Op.(type) {
	case *pb.Op_Source:
		r, err := w.Source(ctx, o.Source)
		return []Ref{r}, err
	case *pb.Op_Exec:
		return w.Exec(ctx, o.Exec, inputs)
	case *pb.Op_File:
		return w.File(ctx, o.File, inputs)
	case *pb.Op_Merge:
		r, err := w.(Merger).Merge(ctx, o.Merge, inputs)
		return []Ref{r}, err
	case *pb.Op_Diff:
		side := func(i int64) Ref {
			if i == int64(pb.Empty) {
				return nil
			}
			return inputs[i]
		}
		r, err := w.(Differ).Diff(ctx, o.Diff, side(o.Diff.Lower.Input), side(o.Diff.Upper.Input))
		return []Ref{r}, err
	}
	// Load refuses every other kind.
	return nil, fmt.Errorf("%s ops cannot run", v.Kind)
}

// stop ends v's run on err. When the solve was cancelled meanwhile (another
// vertex failed, or the caller's context ended), err is taken for the
// cancellation's doing, whatever the Worker made of it: v reports
// VertexCanceled if it had started, and the cancellation's cause is
// returned. Otherwise err is v's own failure (see fail).
func (x *solve) stop(v *Vertex, started bool, err error) error {
	if x.ctx.Err() == nil {
		return x.fail(v, err)
	}
	cause := context.Cause(x.ctx)
	if started {
		x.event(Event{Kind: VertexCanceled, Vertex: v, Key: x.keys[v], Err: cause})
	}
	return cause
}

// fail reports v's failure, records it as the solve's error if it is the
// first, cancelling the rest, and returns it.
func (x *solve) fail(v *Vertex, err error) error {
	ve := &VertexError{Digest: v.Digest, Kind: v.Kind, Name: v.Name, Err: err}
	x.event(Event{Kind: VertexFailed, Vertex: v, Key: x.keys[v], Err: ve})
	x.errOnce.Do(func() {
		x.err = ve
		x.cancel(ve)
	})
	return ve
}

// event reports e to the progress callback, one call at a time.
func (x *solve) event(e Event) {
	if x.s.opts.progress == nil {
		return
	}
	x.progressMu.Lock()
	defer x.progressMu.Unlock()
	x.s.opts.progress(e)
}
