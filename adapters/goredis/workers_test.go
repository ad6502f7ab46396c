package goredis_test

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relock-go/relock/adapters/goredis"
)

// liveWorkers counts the goroutines running a Conn's worker loop.
func liveWorkers() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "goredis.(*Conn).work(")
}

// TestGuardedCallsReuseWorkers checks that guarded calls (a client without
// ContextTimeoutEnabled, a context with a deadline) run on worker
// goroutines that are reused from call to call, instead of one new
// goroutine per call; that Close sends the waiting workers away; and that
// the workers of a Conn nobody closes leave by themselves once idle.
func TestGuardedCallsReuseWorkers(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		const callers, calls = 4, 100
		run := func(c *goredis.Conn) {
			var wg sync.WaitGroup
			for w := range callers {
				wg.Go(func() {
					key := "relock-goredis-test:workers:" + t.Name() + ":" + string(rune('a'+w))
					for range calls {
						if _, err := c.SetNX(ctx, key, "v", time.Minute); err != nil {
							t.Error(err)
							return
						}
						if _, err := c.Eval(ctx, `return redis.call('del', KEYS[1])`, []string{key}); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		}

		c := goredis.New(b.client(t))
		run(c)
		// 800 guarded calls: a goroutine each before; now a few workers,
		// started when none was waiting.
		if n := goredis.WorkersStarted(c); n < 1 || n > callers*calls/4 {
			t.Errorf("%d workers started for %d guarded calls from %d goroutines", n, 2*callers*calls, callers)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		waitNoWorkers(t, "after Close")

		// Without Close, the workers leave once idle.
		c = goredis.New(b.client(t))
		run(c)
		waitNoWorkers(t, "idle, without Close")
	})
}

// waitNoWorkers waits, generously, for every worker goroutine to end.
func waitNoWorkers(t *testing.T, when string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for liveWorkers() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d worker goroutines still running after 10 s", when, liveWorkers())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
