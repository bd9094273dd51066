package build

import (
	"fmt"
	"sync"

	digest "github.com/opencontainers/go-digest"
)

// A Pool is what the solves of one process share when they run at once
// (several images of one recipe, built together): a bound on the Worker
// calls running at a time across all of them, and a lock per cache key, so
// that two solves that reach the same key run its vertex once and the later
// one takes the result from the cache, as BuildKit's solver merges equal
// vertices of concurrent builds. A Pool is safe for concurrent use; its zero
// value is not usable, use NewPool.
type Pool struct {
	slots chan struct{}

	mu   sync.Mutex
	keys map[digest.Digest]*keyLock
}

// keyLock is one cache key's lock, how many solves hold or wait for it, and
// what the last holder settled for those waiting.
type keyLock struct {
	mu      sync.Mutex
	refs    int
	settled bool
	value   any
	err     error
}

// NewPool returns a Pool that lets at most n Worker calls run at a time; n
// must be at least 1.
func NewPool(n int) (*Pool, error) {
	if n < 1 {
		return nil, fmt.Errorf("pool of %d: it must be at least 1", n)
	}
	return &Pool{slots: make(chan struct{}, n), keys: map[digest.Digest]*keyLock{}}, nil
}

// A Hold is one holder's lock of a cache key (Pool.Lock).
type Hold struct {
	p   *Pool
	key digest.Digest
	l   *keyLock
}

// Lock waits until no other holder of key's lock remains and returns the
// hold, which the caller must Unlock. Locks of different keys are
// independent.
func (p *Pool) Lock(key digest.Digest) *Hold {
	p.mu.Lock()
	l := p.keys[key]
	if l == nil {
		l = &keyLock{}
		p.keys[key] = l
	}
	l.refs++
	p.mu.Unlock()
	l.mu.Lock()
	return &Hold{p: p, key: key, l: l}
}

// Outcome is what an earlier holder settled (Settle) while this one waited:
// the outputs it made, or the error its run failed with. ok is false when
// nothing was settled: this holder is the first, or the earlier ones made
// nothing worth sharing (a cancelled run).
func (h *Hold) Outcome() (value any, err error, ok bool) {
	return h.l.value, h.l.err, h.l.settled
}

// Settle leaves the outcome of this holder's run (value, or the error it
// failed with) to the holders waiting for the key, so that they take it
// instead of running again, as BuildKit's solver gives every build that
// shares a vertex the one result or error. It is kept only while holders
// wait: once the last one unlocks it is forgotten, so a later solve (a
// retry of a failed build) runs the key again.
func (h *Hold) Settle(value any, err error) {
	h.l.settled, h.l.value, h.l.err = true, value, err
}

// Unlock releases the hold.
func (h *Hold) Unlock() {
	h.l.mu.Unlock()
	h.p.mu.Lock()
	if h.l.refs--; h.l.refs == 0 {
		delete(h.p.keys, h.key)
	}
	h.p.mu.Unlock()
}

// WithPool makes the Solver share p with the other solves given it: p's
// bound replaces WithParallelism, and a vertex runs under its key's lock,
// looking the cache up again once it holds it.
// The default is no Pool: a solve's own parallelism bound, no key locks.
func WithPool(p *Pool) Option {
	return func(o *options) error {
		if p == nil {
			return fmt.Errorf("WithPool: nil Pool: use NewPool")
		}
		o.pool = p
		return nil
	}
}
