package relock_test

// Issue 9.1 (liveness of the waiter queue) and 9.3 (fencing across an
// empty restart), through the API. Script-level queue tests are in
// edges_internal_test.go.

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/internal/testkit/memdriver"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

type asyncResult struct {
	l   *relock.Lock
	err error
	at  time.Time
}

func obtainAsync(ctx context.Context, c *relock.Client, key string, ttl time.Duration, opts ...relock.Option) <-chan asyncResult {
	ch := make(chan asyncResult, 1)
	go func() {
		l, err := c.Obtain(ctx, key, ttl, opts...)
		ch <- asyncResult{l, err, time.Now()}
	}()
	return ch
}

// 9.1: a lock that frees without a release (an outside DEL, a crashed
// holder) is taken by the queue head within a renewal period (200 ms),
// not when the holder's TTL would have run out, nor a second later.
func TestQueueHeadTakesLockFreedWithoutRelease(t *testing.T) {
	eachServer(t, func(t *testing.T, s *srv) {
		key := s.key(t, "freed")
		a, w := s.client(t), s.client(t)
		ctx := ctxT(t, 15*time.Second)
		if _, err := a.Obtain(ctx, key, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		got := obtainAsync(ctx, w, key, 10*time.Second)
		time.Sleep(300 * time.Millisecond) // w queues
		deleted := time.Now()
		s.do(t, "DEL", key)
		select {
		case r := <-got:
			if r.err != nil {
				t.Fatal(r.err)
			}
			d := r.at.Sub(deleted)
			t.Logf("the queue head took the lock %v after the holder's key was deleted", d)
			if d > 500*time.Millisecond {
				t.Fatalf("the queue head took the freed lock only %v after the key disappeared", d)
			}
			if err := r.l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the queue head never took the lock freed by a DEL")
		}
	})
}

// 9.1: a waiter that gives up leaves the queue, so the next live waiter
// takes a lock freed by expiry at once, not after the first one's lease.
func TestQueueWaiterThatGaveUpDoesNotBlockTheNext(t *testing.T) {
	s := &srv{addr: testredis.Addr(t)} // keys must expire in real time
	key := s.key(t, "gaveup")
	a, w1, w2 := s.client(t), s.client(t), s.client(t)
	ctx := ctxT(t, 15*time.Second)
	const ttl = 800 * time.Millisecond
	la, err := a.Obtain(ctx, key, ttl)
	if err != nil {
		t.Fatal(err)
	}
	expires := la.ObtainedAt().Add(ttl)
	ctx1, cancel1 := context.WithTimeout(ctx, 250*time.Millisecond)
	defer cancel1()
	first := obtainAsync(ctx1, w1, key, 10*time.Second)
	time.Sleep(100 * time.Millisecond) // w1 queues first
	second := obtainAsync(ctx, w2, key, 10*time.Second)
	if r := <-first; !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("the first waiter: %v, want it to give up", r.err)
	}
	// Only the second waiter is left in the queue.
	deadline := time.Now().Add(2 * time.Second)
	for {
		info, err := a.Inspect(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if info.Waiters == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Inspect counts %d waiters after the first gave up, want 1", info.Waiters)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case r := <-second:
		if r.err != nil {
			t.Fatal(r.err)
		}
		d := r.at.Sub(expires)
		t.Logf("the second waiter took the lock %v after the holder's key expired", d)
		if d > 600*time.Millisecond {
			t.Fatalf("the second waiter took the lock %v after the holder's key expired", d)
		}
		if err := r.l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second waiter never took the lock")
	}
}

// 9.3: fencing numbers keep increasing across a server that restarts
// empty and forgets the counter.
func TestFenceIncreasesAcrossEmptyRestart(t *testing.T) {
	obtainFences := func(t *testing.T, c *relock.Client, key string, n int) []int64 {
		t.Helper()
		ctx := ctxT(t, 10*time.Second)
		var fences []int64
		for range n {
			l, err := c.Obtain(ctx, key, 5*time.Second, relock.WithFencing())
			if err != nil {
				t.Fatal(err)
			}
			fences = append(fences, l.Fence())
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return fences
	}
	check := func(t *testing.T, before, after []int64) {
		t.Helper()
		all := append(append([]int64(nil), before...), after...)
		for i := 1; i < len(all); i++ {
			if all[i] <= all[i-1] {
				t.Fatalf("fences %v (restart after %d): %d is not above %d", all, len(before), all[i], all[i-1])
			}
		}
	}
	t.Run("script", func(t *testing.T) {
		s := testredis.Start(t)
		client := func() *relock.Client {
			rdb := goredislib.NewClient(&goredislib.Options{Addr: s.Addr(), MaxRetries: -1})
			t.Cleanup(func() { _ = rdb.Close() })
			return newClient(t, goredis.New(rdb))
		}
		before := obtainFences(t, client(), "{fenced}", 3)
		s.Restart() // SIGKILL and start again: nothing was saved
		if n, err := s.Do("DBSIZE"); err != nil || n != int64(0) {
			t.Fatalf("DBSIZE after the restart = %v, %v; want an empty server", n, err)
		}
		check(t, before, obtainFences(t, client(), "{fenced}", 3))
	})
	t.Run("watch", func(t *testing.T) {
		before := obtainFences(t, newClient(t, memdriver.New().Conn()), "{fenced}", 3)
		// A new store is a server that came back empty.
		check(t, before, obtainFences(t, newClient(t, memdriver.New().Conn()), "{fenced}", 3))
	})
}

// A fenced waiter takes the hand-over (the release's announcement), not
// the lock found by its next renewal: the announcement's fence must parse
// on real Redis, whose Lua prints large numbers as 1.79e+15.
func TestFencedWaiterTakesTheHandover(t *testing.T) {
	eachServer(t, func(t *testing.T, s *srv) {
		key := "{" + s.key(t, "fencedhand") + "}"
		var handed atomic.Bool
		obs := relock.ObserverFunc(func(e relock.Event) {
			if e.Kind == relock.EventObtained && e.HandedOver {
				handed.Store(true)
			}
		})
		a, b := s.client(t), s.client(t, relock.WithObserver(obs))
		ctx := ctxT(t, 10*time.Second)
		la, err := a.Obtain(ctx, key, 5*time.Second, relock.WithFencing())
		if err != nil {
			t.Fatal(err)
		}
		got := obtainAsync(ctx, b, key, 5*time.Second, relock.WithFencing())
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
			time.Sleep(5 * time.Millisecond)
		}
		if err := la.Release(ctx); err != nil {
			t.Fatal(err)
		}
		r := <-got
		if r.err != nil {
			t.Fatal(r.err)
		}
		defer r.l.Release(ctx)
		if r.l.Fence() <= la.Fence() {
			t.Fatalf("b's fence %d is not above a's %d", r.l.Fence(), la.Fence())
		}
		if !handed.Load() {
			t.Fatal("the fenced waiter got the lock by polling: the hand-over announcement was not usable")
		}
	})
}

// A new waiter joins the queue as soon as it listens for hand-overs, not
// a renewal period (200 ms) later: until it joins, a release cannot hand
// it the lock, and a newcomer can take the lock before it.
func TestNewWaiterJoinsTheQueueAtOnce(t *testing.T) {
	eachServer(t, func(t *testing.T, s *srv) {
		key := s.key(t, "join")
		var handed atomic.Bool
		obs := relock.ObserverFunc(func(e relock.Event) {
			if e.Kind == relock.EventObtained && e.HandedOver {
				handed.Store(true)
			}
		})
		a, b := s.client(t), s.client(t, relock.WithObserver(obs))
		ctx := ctxT(t, 10*time.Second)
		la, err := a.Obtain(ctx, key, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		got := obtainAsync(ctx, b, key, 5*time.Second)
		for { // b queues
			info, err := a.Inspect(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if info.Waiters == 1 {
				break
			}
			if time.Since(start) > 5*time.Second {
				t.Fatal("the waiter never joined the queue")
			}
			time.Sleep(2 * time.Millisecond)
		}
		joined := time.Since(start)
		t.Logf("the waiter joined the queue %v after it started", joined)
		// Subscribing takes a round trip or two on loopback; the renewal
		// period is 200 ms.
		if joined > 150*time.Millisecond {
			t.Errorf("the waiter joined the queue only %v after it started", joined)
		}
		if err := la.Release(ctx); err != nil {
			t.Fatal(err)
		}
		r := <-got
		if r.err != nil {
			t.Fatal(r.err)
		}
		defer r.l.Release(ctx)
		if !handed.Load() {
			t.Error("the waiter got the lock by polling, not by hand-over")
		}
	})
}

// Issue 19.2: a waiter asks for its place in the queue no longer than its
// call may wait, so that a waiter whose call ended blocks no release even
// when its leave is slow to arrive (a slow link, a connection to redial).
func TestQueuePlaceEndsWithTheCallsDeadline(t *testing.T) {
	s := &srv{addr: testredis.Addr(t)} // keys must expire in real time
	key := s.key(t, "placebound")
	a, w := s.client(t), s.client(t)
	ctx := ctxT(t, 15*time.Second)
	if _, err := a.Obtain(ctx, key, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	const wait = 600 * time.Millisecond
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	started := time.Now()
	got := obtainAsync(wctx, w, key, 5*time.Second)
	// The waiter's lease key ({...}:relock:w:NAME:TOKEN) expires by the
	// deadline (plus a little: the lease counts from when a try arrives).
	var pttl int64 = -3
	for time.Since(started) < wait/2 && pttl < 0 {
		time.Sleep(20 * time.Millisecond)
		r, err := testredis.Do(s.addr, "SCAN", "0", "MATCH", "*"+key[len(key)-20:]+"*", "COUNT", "1000")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range r.([]any)[1].([]any) {
			if strings.Contains(k.(string), ":relock:w:") {
				p, _ := testredis.Do(s.addr, "PTTL", k.(string))
				pttl = p.(int64)
			}
		}
	}
	if pttl < 0 {
		t.Fatal("found no waiter key")
	}
	if left := time.Until(started.Add(wait)); time.Duration(pttl)*time.Millisecond > left+50*time.Millisecond {
		t.Errorf("the waiter's place lasts %d ms, past its deadline in %v", pttl, left.Round(time.Millisecond))
	}
	if r := <-got; !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("the waiter: %v, want its deadline", r.err)
	}
}
