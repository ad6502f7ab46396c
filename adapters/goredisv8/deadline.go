package goredisv8

import (
	"context"
	"sync"
	"time"
)

// closeWait bounds how long Close waits for calls left running.
const closeWait = 10 * time.Second

// call runs f, in a goroutine of its own when the Conn guards its calls
// and ctx can end, and returns f's result, or ctx's error as soon as ctx
// ends (see "Deadlines" in the package doc). f must not touch anything
// its caller reads after call returned ctx's error.
func call[T any](ctx context.Context, c *Conn, f func() (T, error)) (T, error) {
	if !c.guard || ctx.Done() == nil {
		return f()
	}
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	if !c.goTracked(func() {
		v, err := f()
		done <- result{v, err}
	}) {
		return zero, ErrClosed
	}
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// goTracked runs f in a goroutine that Close waits for; it reports false,
// running nothing, after Close.
func (c *Conn) goTracked(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.running.Add(1)
	go func() {
		defer c.running.Done()
		f()
	}()
	return true
}

// waitFor waits for wg, up to d, and reports whether it is done.
func waitFor(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
