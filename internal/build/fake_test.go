package build

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
)

// fakeWorker performs ops on strings: a result is a text naming the op and
// its inputs' results ("exec[make](docker-image://...)"), so a test can see
// which inputs reached which op. It records every call, the calls running at
// once, and can fail, block or meet at a barrier for chosen ops, by name: the
// source identifier, the exec args joined by spaces, the file op's summary
// (fileOpName), "merge", "diff".
type fakeWorker struct {
	mu       sync.Mutex
	calls    []string       // "kind name", in call order
	counts   map[string]int // name -> calls
	running  int
	maxRun   int
	inFlight int // calls not yet returned, ContentKey included

	content map[string]digest.Digest // source identifier -> content key
	fail    map[string]error         // name -> error to return
	// blockUntilCancel: the op waits for its context to end, records
	// that it saw it in cancelled, and returns the context's error.
	blockUntilCancel map[string]bool
	cancelled        map[string]bool
	// entered is closed when the op of that name has started.
	entered map[string]chan struct{}
	// waitFor: before returning, the op waits until the op named by the
	// value has started (or its context ends).
	waitFor map[string]string
	// barrier: ops whose name is a key wait until that many ops of the
	// barrier have arrived at once (or their context ends).
	barrier *barrier
	// outputs overrides the number of outputs an op returns.
	outputs map[string]int
}

func newFakeWorker() *fakeWorker {
	return &fakeWorker{
		counts:           map[string]int{},
		content:          map[string]digest.Digest{},
		fail:             map[string]error{},
		blockUntilCancel: map[string]bool{},
		cancelled:        map[string]bool{},
		entered:          map[string]chan struct{}{},
		waitFor:          map[string]string{},
		outputs:          map[string]int{},
	}
}

// barrier lets ops in names through only when n of them wait at once: a
// solver that runs them one at a time never opens it.
type barrier struct {
	names   map[string]bool
	n       int
	mu      sync.Mutex
	arrived int
	open    chan struct{}
}

func newBarrier(n int, names ...string) *barrier {
	b := &barrier{names: map[string]bool{}, n: n, open: make(chan struct{})}
	for _, name := range names {
		b.names[name] = true
	}
	return b
}

func (b *barrier) wait(ctx context.Context, name string) error {
	if b == nil || !b.names[name] {
		return nil
	}
	b.mu.Lock()
	b.arrived++
	if b.arrived == b.n {
		close(b.open)
	}
	b.mu.Unlock()
	select {
	case <-b.open:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("barrier for %s: %d of %d arrived: %w", name, b.arrived, b.n, ctx.Err())
	}
}

// enteredCh returns the channel closed when name starts.
func (w *fakeWorker) enteredCh(name string) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch, ok := w.entered[name]
	if !ok {
		ch = make(chan struct{})
		w.entered[name] = ch
	}
	return ch
}

// call records the start of op kind/name, applies the hooks, and returns
// what the op should return as its error.
func (w *fakeWorker) call(ctx context.Context, kind, name string) (err error) {
	w.mu.Lock()
	w.calls = append(w.calls, kind+" "+name)
	w.counts[name]++
	w.running++
	w.inFlight++
	if w.running > w.maxRun {
		w.maxRun = w.running
	}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.running--
		w.inFlight--
		w.mu.Unlock()
	}()
	ch := w.enteredCh(name)
	w.mu.Lock()
	select {
	case <-ch:
	default:
		close(ch)
	}
	other, wait := w.waitFor[name]
	block := w.blockUntilCancel[name]
	ferr := w.fail[name]
	w.mu.Unlock()

	if err := w.barrier.wait(ctx, name); err != nil {
		return err
	}
	if wait {
		select {
		case <-w.enteredCh(other):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if block {
		<-ctx.Done()
		w.mu.Lock()
		w.cancelled[name] = true
		w.mu.Unlock()
		return ctx.Err()
	}
	return ferr
}

func (w *fakeWorker) count(name string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.counts[name]
}

func (w *fakeWorker) callList() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.calls...)
}

func (w *fakeWorker) ContentKey(ctx context.Context, op *pb.SourceOp) (digest.Digest, error) {
	w.mu.Lock()
	w.inFlight++
	k := w.content[op.Identifier]
	ferr := w.fail["contentkey "+op.Identifier]
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.inFlight--
		w.mu.Unlock()
	}()
	if ferr != nil {
		return "", ferr
	}
	return k, nil
}

func (w *fakeWorker) Source(ctx context.Context, op *pb.SourceOp) (Ref, error) {
	if err := w.call(ctx, "source", op.Identifier); err != nil {
		return nil, err
	}
	return op.Identifier, nil
}

func refText(r Ref) string {
	if r == nil {
		return "scratch"
	}
	return r.(string)
}

func inputText(inputs []Ref, i int64) string {
	if i == int64(pb.Empty) {
		return "scratch"
	}
	return refText(inputs[i])
}

func (w *fakeWorker) Exec(ctx context.Context, op *pb.ExecOp, inputs []Ref) ([]Ref, error) {
	name := strings.Join(op.Meta.Args, " ")
	if err := w.call(ctx, "exec", name); err != nil {
		return nil, err
	}
	var outs []Ref
	for _, m := range op.Mounts {
		if m.Output == int64(pb.SkipOutput) {
			continue
		}
		for int64(len(outs)) <= m.Output {
			outs = append(outs, nil)
		}
		outs[m.Output] = fmt.Sprintf("exec[%s]@%s(%s)", name, m.Dest, inputText(inputs, m.Input))
	}
	return w.trim(name, outs), nil
}

func (w *fakeWorker) File(ctx context.Context, op *pb.FileOp, inputs []Ref) ([]Ref, error) {
	name := fileOpName(op.Actions)
	if err := w.call(ctx, "file", name); err != nil {
		return nil, err
	}
	var outs []Ref
	for _, a := range op.Actions {
		if a.Output == int64(pb.SkipOutput) {
			continue
		}
		for int64(len(outs)) <= a.Output {
			outs = append(outs, nil)
		}
		in := "scratch"
		if a.Input >= 0 && a.Input < int64(len(inputs)) {
			in = refText(inputs[a.Input])
		}
		outs[a.Output] = fmt.Sprintf("file[%s](%s)", name, in)
	}
	return w.trim(name, outs), nil
}

func (w *fakeWorker) Merge(ctx context.Context, op *pb.MergeOp, inputs []Ref) (Ref, error) {
	if err := w.call(ctx, "merge", "merge"); err != nil {
		return nil, err
	}
	parts := make([]string, len(op.Inputs))
	for i, in := range op.Inputs {
		parts[i] = refText(inputs[in.Input])
	}
	return "merge(" + strings.Join(parts, ", ") + ")", nil
}

func (w *fakeWorker) Diff(ctx context.Context, op *pb.DiffOp, lower, upper Ref) (Ref, error) {
	if err := w.call(ctx, "diff", "diff"); err != nil {
		return nil, err
	}
	return "diff(" + refText(lower) + " -> " + refText(upper) + ")", nil
}

// trim applies an outputs override, to test the solver's output check.
func (w *fakeWorker) trim(name string, outs []Ref) []Ref {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, ok := w.outputs[name]; ok {
		return outs[:n]
	}
	return outs
}

// plainWorker is a Worker that cannot merge or diff.
type plainWorker struct{ w *fakeWorker }

func (p plainWorker) ContentKey(ctx context.Context, op *pb.SourceOp) (digest.Digest, error) {
	return p.w.ContentKey(ctx, op)
}
func (p plainWorker) Source(ctx context.Context, op *pb.SourceOp) (Ref, error) {
	return p.w.Source(ctx, op)
}
func (p plainWorker) Exec(ctx context.Context, op *pb.ExecOp, in []Ref) ([]Ref, error) {
	return p.w.Exec(ctx, op, in)
}
func (p plainWorker) File(ctx context.Context, op *pb.FileOp, in []Ref) ([]Ref, error) {
	return p.w.File(ctx, op, in)
}

// memCache is a Cache in a map.
type memCache struct {
	mu   sync.Mutex
	m    map[digest.Digest][]Ref
	gets int
	puts int
}

func newMemCache() *memCache { return &memCache{m: map[digest.Digest][]Ref{}} }

func (c *memCache) Get(ctx context.Context, key digest.Digest) ([]Ref, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gets++
	r, ok := c.m[key]
	return r, ok, nil
}

func (c *memCache) Put(ctx context.Context, key digest.Digest, outs []Ref) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.puts++
	c.m[key] = outs
	return nil
}
