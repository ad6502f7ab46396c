package conformance_test

import (
	"context"
	"sync"
	"time"

	"github.com/relock-go/relock/driver"
)

// The broken drivers of the Primitives subtests: each breaks one thing the
// semaphore and the read-write lock need of a driver beyond the mutex
// (several hand-overs announced by one script call, each delivered; their
// scripts' nested replies), and leaves the mutex working.

func init() {
	for name, bd := range brokenDriversPrimitives {
		brokenDrivers[name] = bd
	}
}

var brokenDriversPrimitives = map[string]brokenDriver{
	"CoalescesBursts": {base: "mini",
		wrap: fullWrap(func(f full) driver.Conn { return &coalesces{full: f} }),
		mustFail: []string{
			"Primitives/Semaphore/Script",
			"Primitives/RWLock/Script",
		},
		mustSay: []string{
			"the second of two semaphore waiters handed a permit by one SetLimit got the lock, but its subscription never delivered the hand-over",
			"handed the lock by one writer's release got the lock, but its subscription never delivered the hand-over",
		},
	},
	"NestedStringsAsBytes": {base: "mini",
		wrap: fullWrap(func(f full) driver.Conn { return &nestedReplies{full: f, bug: nestedBytes} }),
		mustFail: []string{
			"Primitives/Semaphore/Script",
			"Primitives/RWLock/Script",
		},
		mustSay: []string{
			"where a semaphore holder (token, ms, entry) was due",
			"where a reader (token, ms, metadata) was due in the read-write inspect script's reply",
		},
	},
	"DropsLastNestedElement": {base: "mini",
		wrap: fullWrap(func(f full) driver.Conn { return &nestedReplies{full: f, bug: nestedDropLast} }),
		mustFail: []string{
			"Primitives/Semaphore/Script",
			"Primitives/RWLock/Script",
		},
		mustSay: []string{
			"where the semaphore's holders were due",
			"to the read-write inspect script: malformed lists of readers or waiters",
		},
	},
}

// coalesceWindow is how close together messages on one channel must
// arrive for coalesces to keep only the first: the messages one script
// call publishes arrive microseconds apart.
const coalesceWindow = 100 * time.Millisecond

// coalesces keeps, of the messages that reach a channel within
// coalesceWindow of the one before, only the first: a wake-up signal of
// one per channel, so a release that announces several hand-overs at
// once reaches the first waiter only. A single hand-over (the mutex's)
// is delivered.
type coalesces struct{ full }

func (b *coalesces) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	var mu sync.Mutex
	last := map[string]time.Time{}
	return b.full.Subscribe(ctx, func(channel, payload string) {
		now := time.Now()
		mu.Lock()
		prev, seen := last[channel]
		last[channel] = now
		mu.Unlock()
		if seen && now.Sub(prev) < coalesceWindow {
			return
		}
		onMessage(channel, payload)
	})
}

// nestedReplies mangles the arrays nested in a script's reply (an array
// inside the reply array), as a driver does whose reply conversion walks
// one level only, or reads nested arrays one element short. The mutex's
// scripts reply with flat arrays; the semaphore's and the read-write
// lock's inspect scripts with lists of holders inside their reply.
type nestedReplies struct {
	full
	bug int
}

const (
	nestedBytes    = iota // a bulk string inside a nested array stays []byte
	nestedDropLast        // a nested array loses its last element
)

func (b *nestedReplies) mangle(r any) any {
	a, ok := r.([]any)
	if !ok {
		return r
	}
	for i, v := range a {
		inner, ok := v.([]any)
		if !ok {
			continue
		}
		switch b.bug {
		case nestedBytes:
			for j, w := range inner {
				if s, ok := w.(string); ok {
					inner[j] = []byte(s)
				}
			}
		case nestedDropLast:
			if len(inner) > 0 {
				a[i] = inner[:len(inner)-1]
			}
		}
	}
	return a
}

func (b *nestedReplies) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	r, err := b.full.Eval(ctx, script, keys, args...)
	return b.mangle(r), err
}

func (b *nestedReplies) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	r, err := b.full.EvalSha(ctx, sha1, keys, args...)
	return b.mangle(r), err
}

func (b *nestedReplies) EvalShaWait(ctx context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	r, n, err := b.full.EvalShaWait(ctx, sha1, keys, args, replicas, timeout)
	return b.mangle(r), n, err
}

func (b *nestedReplies) EvalWait(ctx context.Context, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	r, n, err := b.full.EvalWait(ctx, script, keys, args, replicas, timeout)
	return b.mangle(r), n, err
}
