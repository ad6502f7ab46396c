package goredisv8

import (
	"context"
	"errors"
	"time"
)

// call runs f, in a goroutine of its own when the Conn guards its calls
// and ctx can end, and returns f's result or, as soon as ctx ends, ctx's
// error. f must not write what its caller reads after that.
func call[T any](ctx context.Context, c *Conn, f func() (T, error)) (T, error) {
	if !c.guard || ctx.Done() == nil {
		return f()
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
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

// goTracked runs f in a goroutine that Close waits for; after Close it
// runs nothing and reports false.
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

// waitRunning waits for the goroutines of goTracked, 10 s at most.
func (c *Conn) waitRunning() error {
	done := make(chan struct{})
	go func() {
		c.running.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("relock/goredisv8: calls left at their context's end still run 10 s after Close")
	}
}
