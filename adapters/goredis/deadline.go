package goredis

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// guard runs the calls that the client would not end at their context's
// end on worker goroutines, which the caller leaves when its context ends.
// See "Deadlines" in the package doc.
type guard struct {
	always  bool           // the client ignores context deadlines
	limit   time.Duration  // how long drain waits for calls left running
	running sync.WaitGroup // guarded calls under way, left or not

	// Workers stay for workerIdle after their last call: a new goroutine
	// per call, and its stack's growth, cost ~11% of the client's CPU on
	// the uncontended path. idle hands a call to a waiting worker; stop,
	// closed by drain, sends the waiting ones away.
	idle    chan func()
	stop    chan struct{}
	mu      sync.Mutex // orders starting a worker against stop
	stopped bool
	workers sync.WaitGroup
	spawned atomic.Int64 // workers started, for the tests
}

const (
	workerIdle = 100 * time.Millisecond
	maxLimit   = 10 * time.Second // drain's longest wait
)

// newGuard returns the guard for rdb: always on unless rdb applies context
// deadlines to its sockets (ContextTimeoutEnabled); drain waits for the
// read and write timeouts and a second, at most maxLimit.
func newGuard(rdb redis.UniversalClient) *guard {
	g := &guard{always: true, limit: maxLimit, idle: make(chan func()), stop: make(chan struct{})}
	var read, write time.Duration
	switch r := rdb.(type) {
	case *redis.Client: // also what NewFailoverClient returns
		o := r.Options()
		g.always, read, write = !o.ContextTimeoutEnabled, o.ReadTimeout, o.WriteTimeout
	case *redis.ClusterClient:
		o := r.Options()
		g.always, read, write = !o.ContextTimeoutEnabled, o.ReadTimeout, o.WriteTimeout
	case *redis.Ring:
		o := r.Options()
		g.always, read, write = !o.ContextTimeoutEnabled, o.ReadTimeout, o.WriteTimeout
	default:
		return g
	}
	g.limit = min(max(read, 3*time.Second)+max(write, 3*time.Second)+time.Second, maxLimit)
	return g
}

// call runs f and returns its result, on a worker when ctx can end and the
// client would not end f then (it ignores deadlines, or ctx has only a
// cancellation, which go-redis never applies to a socket): then it returns
// ctx's error as soon as ctx ends, and f runs on until the client's
// timeouts end it. f must not touch what its caller reads after call.
func call[T any](ctx context.Context, g *guard, f func() (T, error)) (T, error) {
	if _, ok := ctx.Deadline(); ctx.Done() == nil || ok && !g.always {
		return f()
	}
	type result struct {
		v   T
		err error
	}
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	done := make(chan result, 1)
	g.running.Add(1)
	g.goRun(func() {
		defer g.running.Done()
		v, err := f()
		done <- result{v, err}
	})
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// goRun runs task on a waiting worker, or on a new one.
func (g *guard) goRun(task func()) {
	select {
	case g.idle <- task:
		return
	default:
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		go task() // racing with drain: no worker to keep
		return
	}
	g.workers.Add(1)
	g.spawned.Add(1)
	go g.work(task)
}

// work runs task, then those handed to it within workerIdle, until stop.
func (g *guard) work(task func()) {
	defer g.workers.Done()
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		task()
		t.Reset(workerIdle)
		select {
		case task = <-g.idle:
		case <-t.C:
			return
		case <-g.stop:
			return
		}
	}
}

// drain sends the workers away and waits, up to g.limit, for the calls
// still running. It may be called more than once.
func (g *guard) drain() error {
	g.mu.Lock()
	if !g.stopped {
		g.stopped = true
		close(g.stop)
	}
	g.mu.Unlock()
	done := make(chan struct{})
	go func() {
		g.running.Wait()
		g.workers.Wait()
		close(done)
	}()
	t := time.NewTimer(g.limit)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return fmt.Errorf("relock/goredis: calls left at their context's end still run %v after Close; the client's timeouts end them", g.limit)
	}
}
