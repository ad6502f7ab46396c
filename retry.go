package relock

import (
	"math/rand/v2"
	"time"
)

// RetryStrategy decides how long Obtain waits between tries while the lock
// is taken. Implementations must be safe for concurrent use: one strategy
// value may serve many Obtain calls at once, so it should keep no state
// between calls.
//
// However long the strategy says, Obtain never sleeps past the holder's
// remaining TTL when the driver reports it (the key is gone by then), nor
// past the caller's wait budget or context.
type RetryStrategy interface {
	// Backoff returns how long to wait before retry number n (1 for the
	// first retry, after the first try failed), or false to stop retrying.
	Backoff(n int) (wait time.Duration, ok bool)
}

// RetryFunc adapts a function to a RetryStrategy.
type RetryFunc func(n int) (time.Duration, bool)

// Backoff calls f(n).
func (f RetryFunc) Backoff(n int) (time.Duration, bool) { return f(n) }

// NoRetry tries once and never waits. It is what TryObtain uses.
func NoRetry() RetryStrategy {
	return RetryFunc(func(int) (time.Duration, bool) { return 0, false })
}

// FixedRetry waits d between tries, without end (bound it with LimitRetry,
// WithMaxWait or the context). A d below zero counts as zero.
func FixedRetry(d time.Duration) RetryStrategy {
	d = max(d, 0)
	return RetryFunc(func(int) (time.Duration, bool) { return d, true })
}

// ExponentialRetry waits about min, 2*min, 4*min, ... up to max between
// tries, without end, each wait drawn at random from its upper half so that
// waiters that failed together do not retry together. min below 1 ms counts
// as 1 ms; max below min counts as min.
func ExponentialRetry(min, max time.Duration) RetryStrategy {
	lo, hi := min, max
	if lo < time.Millisecond {
		lo = time.Millisecond
	}
	if hi < lo {
		hi = lo
	}
	return RetryFunc(func(n int) (time.Duration, bool) {
		d := hi
		if n < 1 {
			n = 1
		}
		if n <= 40 {
			if step := lo << (n - 1); step > 0 && step < hi {
				d = step
			}
		}
		half := d / 2
		return half + rand.N(d-half+1), true
	})
}

// LimitRetry stops s after at most n retries (n+1 tries in all). n below
// zero counts as zero. It keeps s's way of waiting: LimitRetry(DefaultRetry(),
// n) still waits for hand-overs rather than polling.
func LimitRetry(s RetryStrategy, n int) RetryStrategy {
	if s == nil {
		s = NoRetry()
	}
	return limitRetry{s: s, n: n}
}

type limitRetry struct {
	s RetryStrategy
	n int
}

func (l limitRetry) Backoff(i int) (time.Duration, bool) {
	if i > l.n {
		return 0, false
	}
	return l.s.Backoff(i)
}

// DefaultRetry is the strategy a Client uses unless told otherwise:
// ExponentialRetry(2ms, 100ms), until the context ends. When the driver
// wakes waiters on release (driver.Subscriber with driver.Scripter), a
// waiter on the default strategy does not poll: it sleeps until a release
// hands it the lock, trying again only to renew its place in the queue
// (every 125 ms) and when the holder's TTL runs out, which also covers a
// lost notification and a holder that vanished without releasing.
//
// With any other strategy, a waiter on such a driver also joins the queue
// and takes a hand-over the moment it comes; the strategy decides how
// often it tries in between (at least every 125 ms, to keep its place) and
// when it gives up.
func DefaultRetry() RetryStrategy {
	return defaultRetry{ExponentialRetry(2*time.Millisecond, 100*time.Millisecond)}
}

type defaultRetry struct{ RetryStrategy }

// wakes reports whether s leaves the waiting to hand-over notifications
// where the driver has them: DefaultRetry, alone or under LimitRetry.
func wakes(s RetryStrategy) bool {
	switch s := s.(type) {
	case defaultRetry:
		return true
	case limitRetry:
		return wakes(s.s)
	}
	return false
}
