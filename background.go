package relock

import "sync"

// tracker counts goroutines that Close must wait for. Unlike a bare
// sync.WaitGroup, it is safe to start work while Close waits: once closed,
// start refuses, and the caller does the work in the foreground (or not at
// all) instead of racing Add against Wait.
type tracker struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// start counts n more goroutines, unless the tracker is closed.
func (t *tracker) start(n int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(n)
	return true
}

// done ends one goroutine started with start.
func (t *tracker) done() { t.wg.Done() }

// goFunc runs fn in a counted goroutine, or, once closed, right here.
func (t *tracker) goFunc(fn func()) {
	if !t.start(1) {
		fn()
		return
	}
	go func() {
		defer t.wg.Done()
		fn()
	}()
}

// close refuses new work and waits for what runs.
func (t *tracker) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.wg.Wait()
}
