package relock_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// TestSubscriptionFaults: the core, not the driver, survives a broken
// subscription. For every registered driver that has one, a waiter's
// client loses its subscription connection (CLIENT KILL TYPE pubsub, or
// the server restarting); the notifier opens a new one and subscribes to
// the channel of the lock still waited for, as CLIENT LIST shows, and the
// next hand-over reaches the waiter. The drivers only report the break
// (driver.Subscription.Done); none of them reconnects.
func TestSubscriptionFaults(t *testing.T) {
	testredis.SkipShort(t, "starts private servers")
	for _, name := range relock.Drivers() {
		t.Run(name, func(t *testing.T) {
			t.Run("ClientKill", func(t *testing.T) {
				srv := testredis.Start(t)
				holder, waiter := openPair(t, name, srv)
				ctx := ctxT(t, 20*time.Second)
				held, err := holder.Obtain(ctx, "k", 30*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				got := waitFor(ctx, waiter, "k")
				before := waitSubscribed(t, srv, 1, "the waiter's subscription")
				if _, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
					t.Fatal(err)
				}
				waitSubscribed(t, srv, 1, "a new subscription after CLIENT KILL TYPE pubsub", before)
				if err := held.Release(ctx); err != nil {
					t.Fatal(err)
				}
				receive(t, got, "after the kill")
			})
			t.Run("ServerRestart", func(t *testing.T) {
				srv := testredis.Start(t)
				holder, waiter := openPair(t, name, srv)
				ctx := ctxT(t, 30*time.Second)
				held, err := holder.Obtain(ctx, "k", 30*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				first := waitFor(ctx, waiter, "k")
				waitSubscribed(t, srv, 1, "the waiter's subscription")
				srv.Restart() // the key is gone: nothing is kept on disk
				l := receive(t, first, "after the restart")
				_ = held.Release(ctx) // lost with the restart
				// The waiter's client waits again, now behind the holder's
				// client: its notifier must have reopened.
				again, err := holder.Obtain(ctx, "k2", 30*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				second := waitFor(ctx, waiter, "k2")
				waitSubscribed(t, srv, 1, "the subscription reopened after the restart")
				// A pooled connection that died with the restart may fail
				// the first call on it (rueidis sends a write once): that
				// release is retried, which the owner check makes safe.
				err = again.Release(ctx)
				if errors.Is(err, relock.ErrUnavailable) {
					t.Logf("release after the restart: %v; retried", err)
					err = again.Release(ctx)
				}
				if err != nil {
					t.Fatal(err)
				}
				receive(t, second, "of a lock taken after the restart")
				_ = l.Release(ctx)
			})
		})
	}
}

// openPair opens two Clients through driver name to srv.
func openPair(t *testing.T, name string, srv *testredis.Server) (a, b *relock.Client) {
	t.Helper()
	open := func() *relock.Client {
		c, err := relock.Open(name, srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	return open(), open()
}

type obtained struct {
	l   *relock.Lock
	err error
}

// waitFor starts an Obtain of key on c and returns where its result goes.
func waitFor(ctx context.Context, c *relock.Client, key string) <-chan obtained {
	ch := make(chan obtained, 1)
	go func() {
		l, err := c.Obtain(ctx, key, 30*time.Second)
		ch <- obtained{l, err}
	}()
	return ch
}

// receive returns the lock the waiter got, or fails t after 10 s.
func receive(t *testing.T, ch <-chan obtained, what string) *relock.Lock {
	t.Helper()
	select {
	case o := <-ch:
		if o.err != nil {
			t.Fatalf("the waiter %s: %v", what, o.err)
		}
		if err := o.l.Err(); err != nil {
			t.Fatalf("the waiter's lock %s: %v", what, err)
		}
		return o.l
	case <-time.After(10 * time.Second):
		t.Fatalf("the waiter got no lock %s within 10 s", what)
	}
	return nil
}

// waitSubscribed waits until a client of srv whose id is not in not is
// subscribed to at least n channels (CLIENT LIST's sub field), or fails t
// after 10 s. It returns that client's id.
func waitSubscribed(t *testing.T, srv *testredis.Server, n int, what string, not ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for {
		v, err := srv.Do("CLIENT", "LIST")
		if s, ok := v.(string); ok && err == nil {
			last = s
			for _, line := range strings.Split(s, "\n") {
				var id string
				subscribed := false
				for _, f := range strings.Fields(line) {
					if v, ok := strings.CutPrefix(f, "id="); ok {
						id = v
					}
					if sub, ok := strings.CutPrefix(f, "sub="); ok && atoi(sub) >= n {
						subscribed = true
					}
				}
				if subscribed && !slices.Contains(not, id) {
					return id
				}
			}
		} else if err != nil && !errors.Is(err, context.Canceled) {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no client subscribed to %d channel(s) within 10 s, waiting for %s; CLIENT LIST:\n%s", n, what, last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}
