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

// keyLock is one cache key's lock and how many solves hold or wait for it.
type keyLock struct {
	mu   sync.Mutex
	refs int
}

// NewPool returns a Pool that lets at most n Worker calls run at a time; n
// must be at least 1.
func NewPool(n int) (*Pool, error) {
	if n < 1 {
		return nil, fmt.Errorf("pool of %d: it must be at least 1", n)
	}
	return &Pool{slots: make(chan struct{}, n), keys: map[digest.Digest]*keyLock{}}, nil
}

// Lock waits until no other holder of key's lock remains and returns the
// function that releases it. Locks of different keys are independent.
func (p *Pool) Lock(key digest.Digest) (unlock func()) {
	p.mu.Lock()
	l := p.keys[key]
	if l == nil {
		l = &keyLock{}
		p.keys[key] = l
	}
	l.refs++
	p.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		p.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(p.keys, key)
		}
		p.mu.Unlock()
	}
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
