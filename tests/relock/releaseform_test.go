package relock_test

// Issue 19.3: the release of a lock nobody waits for sends the release
// script's short form (the lock key, its queue, the token alone), and a
// waiter queued during the hold still gets the hand-over, the script
// naming the companions after the queue.

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/internal/scripts"
)

// scriptLog is a go-redis adapter that records the KEYS and ARGV of every
// release script it runs.
type scriptLog struct {
	*goredis.Conn
	mu       sync.Mutex
	releases [][2][]string
}

func (c *scriptLog) note(sha string, keys, args []string) {
	if sha != scripts.Release.SHA1 {
		return
	}
	c.mu.Lock()
	c.releases = append(c.releases, [2][]string{append([]string(nil), keys...), append([]string(nil), args...)})
	c.mu.Unlock()
}

func (c *scriptLog) EvalSha(ctx context.Context, sha string, keys []string, args ...string) (any, error) {
	c.note(sha, keys, args)
	return c.Conn.EvalSha(ctx, sha, keys, args...)
}

func (c *scriptLog) Eval(ctx context.Context, src string, keys []string, args ...string) (any, error) {
	if src == scripts.Release.Src {
		c.note(scripts.Release.SHA1, keys, args)
	}
	return c.Conn.Eval(ctx, src, keys, args...)
}

func (c *scriptLog) last(t *testing.T) (keys, args []string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.releases) == 0 {
		t.Fatal("no release script ran")
	}
	r := c.releases[len(c.releases)-1]
	return r[0], r[1]
}

// An uncontended release carries the lock's keys and the token, as a
// compare-and-delete does: the full form's waiter prefix, channel and
// constants are left to the script, which needs them only to serve a
// waiter. An attached lock releases the same way.
func TestUncontendedReleaseSendsTheShortForm(t *testing.T) {
	eachServer(t, func(t *testing.T, s *srv) {
		conn := &scriptLog{Conn: s.conn(t)}
		c := newClient(t, conn, relock.WithKeyPrefix("app:"))
		ctx := ctxT(t, 10*time.Second)
		key := s.key(t, "{short}:job")
		l, err := c.Obtain(ctx, key, 5*time.Second, relock.WithMetadata("m|n"))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		check := func(what string) {
			t.Helper()
			keys, args := conn.last(t)
			tag := "app:{short-" + key[len("{short-"):len(key)-len("}:job")] + "}:relock:"
			if len(keys) != 3 || keys[0] != "app:"+key || keys[1] != tag+"q:"+key || keys[2] != tag+"f:"+key {
				t.Errorf("%s: release KEYS %q, want the lock key, its queue and fencing counter", what, keys)
			}
			if len(args) != 1 || len(args[0]) != 32 {
				t.Errorf("%s: release ARGV %q, want the token alone", what, args)
			}
		}
		check("release")
		if _, ok := s.get(t, "app:"+key); ok {
			t.Fatal("the key outlived its release")
		}

		l, err = c.Obtain(ctx, key, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		a, err := c.Attach(ctx, key, l.Token())
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Release(ctx); err != nil {
			t.Fatal(err)
		}
		check("attached release")
		if _, ok := s.get(t, "app:"+key); ok {
			t.Fatal("the key outlived its release")
		}
	})
}

// A waiter that joins the queue while the lock is held gets it by
// hand-over from a short-form release, with its own metadata and a
// fencing number above the holder's, for every shape of key and prefix
// the companions' names take (the script derives them from the queue's).
func TestWaiterQueuedDuringHoldGetsTheHandover(t *testing.T) {
	eachServer(t, func(t *testing.T, s *srv) {
		for _, tc := range []struct{ name, prefix, base string }{
			{"plain", "", "hand"},
			{"tagged", "", "{user:1}:hand"},
			{"prefix", "app:", "hand"},
			{"prefix-tagged", "app:", "{user:1}:hand"},
			{"prefix-tag", "{tenant}:", "hand"},
			{"infix-like", "", "x:relock:q:hand"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				key := s.key(t, tc.base)
				var handed atomic.Bool
				obs := relock.ObserverFunc(func(e relock.Event) {
					if e.Kind == relock.EventObtained && e.HandedOver {
						handed.Store(true)
					}
				})
				conn := &scriptLog{Conn: s.conn(t)}
				a := newClient(t, conn, relock.WithKeyPrefix(tc.prefix))
				b := newClient(t, s.conn(t), relock.WithKeyPrefix(tc.prefix), relock.WithObserver(obs))
				ctx := ctxT(t, 10*time.Second)
				la, err := a.Obtain(ctx, key, 5*time.Second, relock.WithFencing())
				if err != nil {
					t.Fatal(err)
				}
				got := obtainAsync(ctx, b, key, 5*time.Second, relock.WithFencing(), relock.WithMetadata("b|meta"))
				deadline := time.Now().Add(5 * time.Second)
				for { // b queues
					info, err := a.Inspect(ctx, key)
					if err != nil {
						t.Fatal(err)
					}
					if info.Waiters == 1 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("Inspect counts %d waiters, want b", info.Waiters)
					}
					time.Sleep(2 * time.Millisecond)
				}
				if err := la.Release(ctx); err != nil {
					t.Fatal(err)
				}
				if _, args := conn.last(t); len(args) != 1 {
					t.Fatalf("the release sent ARGV %q, not the short form", args)
				}
				r := <-got
				if r.err != nil {
					t.Fatal(r.err)
				}
				defer r.l.Release(ctx)
				if !handed.Load() {
					t.Fatal("the waiter got the lock by polling, not by hand-over")
				}
				if r.l.Fence() <= la.Fence() {
					t.Fatalf("b's fence %d is not above a's %d", r.l.Fence(), la.Fence())
				}
				info, err := a.Inspect(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				if !info.Held || info.Token != r.l.Token() || info.Metadata != "b|meta" || info.Fence != r.l.Fence() {
					t.Fatalf("Inspect after the hand-over: %+v; b holds token %s, fence %d", info, r.l.Token(), r.l.Fence())
				}
			})
		}
	})
}
