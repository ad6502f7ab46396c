package relock_test

// Issue 15.3: every key relock writes expires, within a documented bound:
// a lock key its TTL after the last write that set it, the waiter queue
// and the waiter leases 500 ms after the last join or renewal, a
// tombstone (a waiter that left) 10 s after it left, and a fencing counter
// 24 h after its last use.

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredislib "github.com/redis/go-redis/v9"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/internal/testkit/testredis"
	"github.com/relock-go/relock/tests/chaos"
)

// Documented lifetimes (see the README, "Keys").
const (
	tombstoneLife = 10 * time.Second
	fenceLife     = 24 * time.Hour
)

// TestEveryKeyExpires runs a mixed workload against a server of its own:
// holders that never release, waiters that cancel, time out, die (their
// connections cut) and whose Client is closed while they wait; fencing,
// metadata and Do; then SCANs every key and wants each to expire, within
// its bound. On miniredis it then moves the clock past every bound and
// wants nothing left.
func TestEveryKeyExpires(t *testing.T) {
	t.Run("miniredis", func(t *testing.T) {
		m := miniredis.RunT(t)
		keys := mixedWorkload(t, m.Addr())
		wantExpiries(t, m.Addr(), keys)
		m.FastForward(time.Minute) // past every TTL, lease and tombstone
		rdb := goredislib.NewClient(&goredislib.Options{Addr: m.Addr()})
		defer rdb.Close()
		left, err := rdb.Keys(context.Background(), "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range left {
			if v, _ := rdb.Get(context.Background(), k).Result(); !isFence(v) {
				t.Errorf("%q (%q) outlived every TTL, lease and tombstone", k, v)
			}
		}
		m.FastForward(fenceLife)
		if n := len(m.Keys()); n != 0 {
			t.Errorf("%d keys outlived the fencing counter's day: %q", n, m.Keys())
		}
	})
	t.Run("redis", func(t *testing.T) {
		testredis.SkipShort(t, "starts a private Redis server")
		srv := testredis.Start(t)
		keys := mixedWorkload(t, srv.Addr())
		wantExpiries(t, srv.Addr(), keys)
	})
}

// isFence reports whether v looks like a fencing counter: the server's
// clock in microseconds when it started, or more.
func isFence(v string) bool {
	n, err := strconv.ParseInt(v, 10, 64)
	return err == nil && n > 1e15
}

// mixedWorkload runs the workload against addr, closes every client, and
// returns the lock keys it used, with their TTLs.
func mixedWorkload(t *testing.T, addr string) map[string]time.Duration {
	ctx := ctxT(t, 30*time.Second)
	var closers []func()
	defer func() {
		for _, f := range closers {
			f()
		}
	}()
	client := func(addr string) *relock.Client {
		t.Helper()
		conn, closeConn, err := chaos.NewConn("goredis", addr)
		if err != nil {
			t.Fatal(err)
		}
		c, err := relock.New(conn)
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, func() { _ = c.Close(); closeConn() })
		return c
	}
	const ttl = 30 * time.Second
	keys := map[string]time.Duration{}
	key := func(base string) string {
		k := "{" + freshKey(t, base) + "}"
		keys[k] = ttl
		return k
	}
	holders := client(addr)
	// hold takes key and never releases it.
	hold := func(key string, opts ...relock.Option) {
		t.Helper()
		if _, err := holders.Obtain(ctx, key, ttl, opts...); err != nil {
			t.Fatal(err)
		}
	}
	waiters := client(addr)
	// queue starts an Obtain of c's on key and returns once it queued.
	queue := func(c *relock.Client, ctx context.Context, key string, opts ...relock.Option) <-chan asyncResult {
		t.Helper()
		ch := obtainAsync(ctx, c, key, ttl, opts...)
		waitWaiters(t, holders, key, 1)
		return ch
	}
	notObtained := func(what string, ch <-chan asyncResult) {
		t.Helper()
		if r := <-ch; r.err == nil {
			t.Fatalf("%s: obtained", what)
		}
	}

	// A waiter that cancels.
	k := key("cancel")
	hold(k)
	cctx, cancel := context.WithCancel(ctx)
	ch := queue(waiters, cctx, k)
	cancel()
	notObtained("cancelled", ch)

	// A waiter that times out.
	k = key("timeout")
	hold(k, relock.WithFencing())
	notObtained("timed out", queue(waiters, ctx, k, relock.WithMaxWait(300*time.Millisecond), relock.WithFencing()))

	// A waiter whose Client is closed while it waits.
	k = key("closed")
	hold(k)
	closing := client(addr)
	ch = queue(closing, ctx, k, relock.WithMetadata("closing"))
	if err := closing.Close(); err != nil {
		t.Fatal(err)
	}
	notObtained("closed", ch)

	// Waiters that die: their connections cut, nothing of theirs reaches
	// Redis again. One fenced.
	for _, opts := range [][]relock.Option{nil, {relock.WithFencing()}} {
		k = key("die")
		hold(k, opts...)
		px, err := chaos.NewProxy(addr, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		doomed := client(px.Addr())
		// A waiter that gets no answer keeps trying until its context
		// ends (Redis may come back): give it a short one.
		dctx, dcancel := context.WithTimeout(ctx, time.Second)
		defer dcancel()
		ch = queue(doomed, dctx, k, opts...)
		_ = px.Close()
		notObtained("dead", ch)
	}

	// A fenced hand-over with metadata, released.
	k = key("handover")
	a, err := holders.Obtain(ctx, k, ttl, relock.WithFencing(), relock.WithMetadata("a"))
	if err != nil {
		t.Fatal(err)
	}
	ch = queue(waiters, ctx, k, relock.WithFencing(), relock.WithMetadata("b"))
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.l.Fence() <= a.Fence() {
		t.Errorf("fence %d after %d", r.l.Fence(), a.Fence())
	}
	if err := r.l.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// Do, twice at once: one waits for the other.
	k = key("do")
	inside := make(chan struct{})
	second := make(chan error, 1)
	first := make(chan error, 1)
	go func() {
		first <- holders.Do(ctx, k, ttl, func(ctx context.Context) error {
			close(inside)
			for { // until the second Do queues
				if info, err := holders.Inspect(ctx, k); err != nil || info.Waiters == 1 {
					return err
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}()
	<-inside
	go func() { second <- waiters.Do(ctx, k, ttl, func(context.Context) error { return nil }) }()
	for _, ch := range []chan error{first, second} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// wantExpiries SCANs every key at addr and wants each to expire: a lock
// key within its TTL, a fencing counter within a day, anything else
// (queues, leases, tombstones) within the tombstone's 10 s.
func wantExpiries(t *testing.T, addr string, locks map[string]time.Duration) {
	t.Helper()
	ctx := context.Background()
	rdb := goredislib.NewClient(&goredislib.Options{Addr: addr})
	defer rdb.Close()
	var all []string
	iter := rdb.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		all = append(all, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 {
		t.Fatal("SCAN found no keys at all: the workload left nothing to check")
	}
	for _, k := range all {
		pttl, err := rdb.PTTL(ctx, k).Result()
		if errors.Is(err, goredislib.Nil) || pttl == -2 {
			continue // expired since the SCAN
		}
		if err != nil {
			t.Fatal(err)
		}
		typ, _ := rdb.Type(ctx, k).Result()
		if pttl < 0 {
			t.Errorf("%s %q has no expiry", typ, k)
			continue
		}
		bound, what := tombstoneLife, "a queue, lease or tombstone"
		if ttl, ok := locks[k]; ok {
			bound, what = ttl, "a lock key"
		} else if v, _ := rdb.Get(ctx, k).Result(); typ == "string" && isFence(v) {
			bound, what = fenceLife, "a fencing counter"
		}
		if pttl > bound {
			t.Errorf("%s %q (%s) expires in %v, more than %v", typ, k, what, pttl, bound)
		}
	}
	t.Logf("checked the expiries of %d keys", len(all))
}
