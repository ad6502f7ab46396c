// Package backoff paces the adapters' reconnect attempts: waits that
// double from 1 ms up to 1 s, cut short when the caller is told to stop.
package backoff

import "time"

// Bounds of the wait.
const (
	Min = time.Millisecond
	Max = time.Second
)

// Backoff is the wait before the next attempt. The zero value starts at
// Min. It is not safe for concurrent use.
type Backoff struct{ next time.Duration }

// Reset starts the waits at Min again, after a success that lasted.
func (b *Backoff) Reset() { b.next = 0 }

// Wait sleeps for the current wait and doubles it, up to Max. It returns
// false at once when done closes first.
func (b *Backoff) Wait(done <-chan struct{}) bool {
	if b.next == 0 {
		b.next = Min
	}
	t := time.NewTimer(b.next)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C:
	}
	b.next = min(2*b.next, Max)
	return true
}
