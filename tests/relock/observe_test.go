package relock_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/memdriver"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// recorder is an Observer that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []relock.Event
}

func (r *recorder) Observe(e relock.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) all() []relock.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) kinds() []relock.EventKind {
	var ks []relock.EventKind
	for _, e := range r.all() {
		ks = append(ks, e.Kind)
	}
	return ks
}

func (r *recorder) count(kind relock.EventKind) int {
	n := 0
	for _, e := range r.all() {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// waitFor returns the first event of kind, waiting for it for a generous
// while.
func (r *recorder) waitFor(t *testing.T, kind relock.EventKind) relock.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, e := range r.all() {
			if e.Kind == kind {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %v event within 10s; got %v", kind, r.kinds())
		}
		time.Sleep(time.Millisecond)
	}
}

// miniredisConn returns a goredis adapter over a fresh miniredis, closed
// when the test ends.
func miniredisConn(t *testing.T) (*goredis.Conn, *miniredis.Miniredis) {
	t.Helper()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return goredis.New(rdb), m
}

// realRedisConn returns a goredis adapter over the shared real Redis (the
// test skips when it is unreachable), and its address.
func realRedisConn(t *testing.T) (*goredis.Conn, string) {
	t.Helper()
	addr := testredis.Addr(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return goredis.New(rdb), addr
}

// uniqueKey is a key no other run of any test uses.
func uniqueKey(name string) string {
	return fmt.Sprintf("relock-test:observe:%s:%d", name, time.Now().UnixNano())
}

// The events of one lock's life, in order, on both paths: obtained,
// refreshed, released; an observer given to Obtain applies to that lock.
func TestObserverObtainRefreshRelease(t *testing.T) {
	backends := map[string]func(t *testing.T) driver.Conn{
		"watch-path-memdriver": func(*testing.T) driver.Conn { return memdriver.New().Conn() },
		"script-path-miniredis": func(t *testing.T) driver.Conn {
			c, _ := miniredisConn(t)
			return c
		},
	}
	for name, newConn := range backends {
		t.Run(name, func(t *testing.T) {
			rec := &recorder{}
			c, err := relock.New(newConn(t), relock.WithObserver(rec))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			before := time.Now()
			l, err := c.Obtain(ctx, "obs:plain", 10*time.Second, relock.WithFencing())
			if err != nil {
				t.Fatal(err)
			}
			after := time.Now()
			if err := l.Refresh(ctx, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			released := time.Now()

			evs := rec.all()
			want := []relock.EventKind{relock.EventObtained, relock.EventRefreshed, relock.EventReleased}
			if got := rec.kinds(); !slices.Equal(got, want) {
				t.Fatalf("events %v, want %v", got, want)
			}
			if l.Fence() == 0 {
				t.Fatal("a fenced lock has fence 0")
			}
			for _, e := range evs {
				if e.Key != "obs:plain" || e.Fence != l.Fence() || e.Err != nil {
					t.Errorf("%v: key %q fence %d err %v; want obs:plain, %d, nil", e.Kind, e.Key, e.Fence, e.Err, l.Fence())
				}
				if e.Time.Before(before) || e.Time.After(released) {
					t.Errorf("%v at %v, outside the test's [%v, %v]", e.Kind, e.Time, before, released)
				}
			}
			ob, ref, rel := evs[0], evs[1], evs[2]
			if ob.Tries != 1 || ob.HandedOver || ob.TTL != 10*time.Second {
				t.Errorf("obtained: tries %d handed over %v ttl %v; want 1, false, 10s", ob.Tries, ob.HandedOver, ob.TTL)
			}
			if ob.Wait < 0 || ob.Time.Add(-ob.Wait).Before(before) || ob.Time.After(after) {
				t.Errorf("obtained: wait %v ending at %v, not within the call [%v, %v]", ob.Wait, ob.Time, before, after)
			}
			if ref.TTL != 20*time.Second {
				t.Errorf("refreshed: ttl %v, want the new 20s", ref.TTL)
			}
			if want := rel.Time.Sub(l.ObtainedAt()); rel.Held != want || rel.Held <= 0 {
				t.Errorf("released: held %v, want %v (from ObtainedAt), positive", rel.Held, want)
			}

			// An observer given to Obtain replaces the Client's for that lock.
			own := &recorder{}
			l2, err := c.Obtain(ctx, "obs:own", time.Second, relock.WithObserver(own))
			if err != nil {
				t.Fatal(err)
			}
			if err := l2.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if got, want := own.kinds(), []relock.EventKind{relock.EventObtained, relock.EventReleased}; !slices.Equal(got, want) {
				t.Errorf("events to Obtain's observer %v, want %v", got, want)
			}
			if n := len(rec.all()); n != 3 {
				t.Errorf("the Client's observer got %d events, want still 3: Obtain's option replaces it", n)
			}

			// Do: obtained and released, once each.
			doRec := &recorder{}
			err = c.Do(ctx, "obs:do", time.Second, func(context.Context) error { return nil }, relock.WithObserver(doRec))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := doRec.kinds(), []relock.EventKind{relock.EventObtained, relock.EventReleased}; !slices.Equal(got, want) {
				t.Errorf("events of Do %v, want %v", got, want)
			}
		})
	}
}

// countingConn is a goredis adapter that counts the scripts that ran and
// the subscriptions it opened, so a test knows when a waiter has queued.
type countingConn struct {
	*goredis.Conn
	scripts atomic.Int32 // EvalSha or Eval calls that returned a reply
	subs    atomic.Int32
}

func (c *countingConn) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	r, err := c.Conn.EvalSha(ctx, sha1, keys, args...)
	if err == nil {
		c.scripts.Add(1)
	}
	return r, err
}

func (c *countingConn) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	r, err := c.Conn.Eval(ctx, script, keys, args...)
	if err == nil {
		c.scripts.Add(1)
	}
	return r, err
}

func (c *countingConn) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	c.subs.Add(1)
	return c.Conn.Subscribe(ctx, onMessage)
}

// A waiter woken by a release gets EventObtained with HandedOver, on the
// script path with a Subscriber: miniredis and the real server.
func TestObserverHandOver(t *testing.T) {
	type backend struct {
		conns   func(t *testing.T) (holder, waiter *goredis.Conn)
		fencing bool // the fence counter never expires: not on the shared server
	}
	backends := map[string]backend{
		"miniredis": {fencing: true, conns: func(t *testing.T) (*goredis.Conn, *goredis.Conn) {
			m := miniredis.RunT(t)
			var conns [2]*goredis.Conn
			for i := range conns {
				rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
				t.Cleanup(func() { _ = rdb.Close() })
				conns[i] = goredis.New(rdb)
			}
			return conns[0], conns[1]
		}},
		"redis": {conns: func(t *testing.T) (*goredis.Conn, *goredis.Conn) {
			a, _ := realRedisConn(t)
			b, _ := realRedisConn(t)
			return a, b
		}},
	}
	for name, b := range backends {
		t.Run(name, func(t *testing.T) {
			hconn, wconn := b.conns(t)
			var opts []relock.Option
			if b.fencing {
				opts = append(opts, relock.WithFencing())
			}
			key := uniqueKey("handover")
			ctx := context.Background()

			hrec := &recorder{}
			holder, err := relock.New(hconn, relock.WithObserver(hrec))
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Close()
			held, err := holder.Obtain(ctx, key, 10*time.Second, opts...)
			if err != nil {
				t.Fatal(err)
			}

			wrec := &recorder{}
			counted := &countingConn{Conn: wconn}
			// A retry strategy that never polls: only a hand-over (or the
			// queue's renewals) can get the lock to the waiter.
			waiter, err := relock.New(counted, relock.WithObserver(wrec), relock.WithRetry(relock.FixedRetry(time.Hour)))
			if err != nil {
				t.Fatal(err)
			}
			defer waiter.Close()
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			type result struct {
				l   *relock.Lock
				err error
			}
			got := make(chan result, 1)
			start := time.Now()
			go func() {
				l, err := waiter.Obtain(wctx, key, 10*time.Second, opts...)
				got <- result{l, err}
			}()
			// The first try finds the lock taken; the waiter subscribes and
			// its second try queues it.
			deadline := time.Now().Add(10 * time.Second)
			for counted.scripts.Load() < 2 || counted.subs.Load() < 1 {
				if time.Now().After(deadline) {
					t.Fatal("the waiter did not subscribe and queue within 10s")
				}
				time.Sleep(time.Millisecond)
			}
			if err := held.Release(ctx); err != nil {
				t.Fatal(err)
			}
			r := <-got
			if r.err != nil {
				t.Fatal(r.err)
			}
			defer r.l.Release(ctx)

			if got, want := hrec.kinds(), []relock.EventKind{relock.EventObtained, relock.EventReleased}; !slices.Equal(got, want) {
				t.Fatalf("holder's events %v, want %v", got, want)
			}
			if hrec.all()[0].HandedOver {
				t.Error("the holder's uncontended lock is reported handed over")
			}
			if got := wrec.kinds(); !slices.Equal(got, []relock.EventKind{relock.EventObtained}) {
				t.Fatalf("waiter's events %v, want [obtained]", got)
			}
			e := wrec.all()[0]
			if !e.HandedOver {
				t.Error("the woken waiter's EventObtained has HandedOver false")
			}
			if e.Tries != 2 {
				t.Errorf("the woken waiter made %d tries, want 2 (taken, queued)", e.Tries)
			}
			if e.Wait <= 0 || e.Time.Add(-e.Wait).Before(start) {
				t.Errorf("the waiter's wait %v ending %v does not fit its call, started %v", e.Wait, e.Time, start)
			}
			if e.Key != key || e.Fence != r.l.Fence() {
				t.Errorf("waiter's event key %q fence %d, want %q %d", e.Key, e.Fence, key, r.l.Fence())
			}
			if b.fencing && e.Fence <= held.Fence() {
				t.Errorf("handed-over fence %d not above the holder's %d", e.Fence, held.Fence())
			}
		})
	}
}

// failingRefreshConn obtains normally and, once fail is set, fails every
// transaction (the WATCH path's refresh) at once: a Redis that refuses.
type failingRefreshConn struct {
	*memdriver.Conn
	fail atomic.Bool
}

var errRefused = errors.New("observe_test: connection refused")

func (c *failingRefreshConn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	if c.fail.Load() {
		return errRefused
	}
	return c.Conn.Watch(ctx, keys, fn)
}

// Refreshes that fail give EventRefreshFailed with the cause, then one
// EventLost when the validity runs out; refreshes that stall give the same.
func TestObserverRefreshFailure(t *testing.T) {
	const ttl = 600 * time.Millisecond
	t.Run("failing", func(t *testing.T) {
		conn := &failingRefreshConn{Conn: memdriver.New().Conn()}
		rec := &recorder{}
		c, err := relock.New(conn, relock.WithObserver(rec))
		if err != nil {
			t.Fatal(err)
		}
		l, err := c.Obtain(context.Background(), "obs:failing", ttl, relock.WithAutoRefresh())
		if err != nil {
			t.Fatal(err)
		}
		rec.waitFor(t, relock.EventRefreshed)
		conn.fail.Store(true)
		lost := rec.waitFor(t, relock.EventLost)
		_ = c.Close() // no refresh runs after this: the events are final

		evs := rec.all()
		lostAt := slices.IndexFunc(evs, func(e relock.Event) bool { return e.Kind == relock.EventLost })
		lastOK := -1
		for i, e := range evs[:lostAt] {
			if e.Kind == relock.EventRefreshed {
				lastOK = i
			}
		}
		failed := 0
		for _, e := range evs[lastOK+1 : lostAt] {
			if e.Kind != relock.EventRefreshFailed {
				t.Errorf("between the last refresh and the loss: %v", e.Kind)
				continue
			}
			failed++
			if !errors.Is(e.Err, errRefused) || e.Key != "obs:failing" || e.TTL != ttl {
				t.Errorf("refresh failed: err %v key %q ttl %v; want the driver's error, obs:failing, %v", e.Err, e.Key, e.TTL, ttl)
			}
		}
		if failed == 0 {
			t.Errorf("no EventRefreshFailed before the loss: %v", rec.kinds())
		}
		if n := rec.count(relock.EventLost); n != 1 {
			t.Errorf("%d EventLost, want 1", n)
		}
		if !errors.Is(lost.Err, relock.ErrLost) || errors.Is(lost.Err, relock.ErrNotHeld) {
			t.Errorf("lost: err %v, want ErrLost by validity, not ErrNotHeld", lost.Err)
		}
		if !errors.Is(l.Err(), relock.ErrLost) {
			t.Errorf("Err() = %v, want ErrLost", l.Err())
		}
		if lost.Time.Before(l.ValidUntil()) {
			t.Errorf("loss reported at %v, before the validity ran out at %v", lost.Time, l.ValidUntil())
		}
		if lost.Held < ttl-ttl/100-2*time.Millisecond {
			t.Errorf("lost: held %v, less than one validity period", lost.Held)
		}
	})
	t.Run("stalling", func(t *testing.T) {
		// Each refresh waits until its deadline, the validity's end, and
		// fails as the validity timer ends the lock: either may be told
		// first.
		conn := &stallingConn{Conn: memdriver.New().Conn(), stall: make(chan struct{})}
		rec := &recorder{}
		c, err := relock.New(conn, relock.WithObserver(rec))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Obtain(context.Background(), "obs:stalling", ttl, relock.WithAutoRefresh()); err != nil {
			t.Fatal(err)
		}
		close(conn.stall)
		lost := rec.waitFor(t, relock.EventLost)
		failed := rec.waitFor(t, relock.EventRefreshFailed)
		_ = c.Close()
		if !errors.Is(failed.Err, context.DeadlineExceeded) {
			t.Errorf("refresh failed: err %v, want the deadline", failed.Err)
		}
		if !errors.Is(lost.Err, relock.ErrLost) || errors.Is(lost.Err, relock.ErrNotHeld) {
			t.Errorf("lost: err %v, want ErrLost by validity", lost.Err)
		}
		if n := rec.count(relock.EventLost); n != 1 {
			t.Errorf("%d EventLost, want 1", n)
		}
	})
}

// A key deleted (or expired) behind an auto-refreshed lock: the next
// refresh finds it gone and the observer gets one EventLost whose Err
// matches ErrLost and ErrNotHeld; a Release after it emits nothing.
func TestObserverLost(t *testing.T) {
	type backend struct {
		conn func(t *testing.T) driver.Conn
		// remove makes key vanish behind the lock.
		remove func(t *testing.T, key string)
	}
	var (
		store = memdriver.New()
		mini  *miniredis.Miniredis
		addr  string
	)
	backends := map[string]backend{
		"watch-path-memdriver-expired": {
			conn:   func(*testing.T) driver.Conn { return store.Conn() },
			remove: func(*testing.T, string) { store.Advance(time.Hour) },
		},
		"script-path-miniredis-deleted": {
			conn: func(t *testing.T) driver.Conn {
				c, m := miniredisConn(t)
				mini = m
				return c
			},
			remove: func(_ *testing.T, key string) { mini.Del(key) },
		},
		"script-path-redis-deleted": {
			conn: func(t *testing.T) driver.Conn {
				c, a := realRedisConn(t)
				addr = a
				return c
			},
			remove: func(t *testing.T, key string) {
				if _, err := testredis.Do(addr, "DEL", key); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for name, b := range backends {
		t.Run(name, func(t *testing.T) {
			rec := &recorder{}
			c, err := relock.New(b.conn(t), relock.WithObserver(rec))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			key := uniqueKey("lost")
			ctx := context.Background()
			l, err := c.Obtain(ctx, key, 1500*time.Millisecond, relock.WithAutoRefresh())
			if err != nil {
				t.Fatal(err)
			}
			b.remove(t, key)
			lost := rec.waitFor(t, relock.EventLost)
			if !errors.Is(lost.Err, relock.ErrLost) || !errors.Is(lost.Err, relock.ErrNotHeld) {
				t.Errorf("lost: err %v, want ErrLost and ErrNotHeld", lost.Err)
			}
			if lost.Key != key || lost.Held <= 0 || lost.TTL != 1500*time.Millisecond {
				t.Errorf("lost: key %q held %v ttl %v; want %q, positive, 1.5s", lost.Key, lost.Held, lost.TTL, key)
			}
			select {
			case <-l.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("Done not closed after EventLost")
			}
			if err := l.Release(ctx); !errors.Is(err, relock.ErrNotHeld) {
				t.Errorf("Release after the loss = %v, want ErrNotHeld", err)
			}
			// Refreshes before the deletion are fine; after it, the loss
			// is the last event.
			evs := rec.all()
			if last := evs[len(evs)-1]; last.Kind != relock.EventLost || rec.count(relock.EventLost) != 1 {
				t.Errorf("events %v, want one EventLost, last", rec.kinds())
			}
			if rec.count(relock.EventReleased) != 0 {
				t.Errorf("a Release of a lost lock emitted EventReleased: %v", rec.kinds())
			}
		})
	}
}

// Obtain that fails tells why: taken (ErrNotObtained alone), the wait
// budget (ErrNotObtained), the caller's context (ErrNotObtained and the
// context's error), also when the context had ended before the call.
func TestObserverNotObtained(t *testing.T) {
	store := memdriver.New()
	c, err := relock.New(store.Conn())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	held, err := c.Obtain(ctx, "obs:taken", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release(ctx)

	check := func(t *testing.T, e relock.Event, minTries int) {
		t.Helper()
		if e.Kind != relock.EventNotObtained || e.Key != "obs:taken" || e.HandedOver || e.Fence != 0 || e.Tries < minTries || e.Wait < 0 {
			t.Errorf("event %+v; want not_obtained for obs:taken, at least %d tries", e, minTries)
		}
		if !errors.Is(e.Err, relock.ErrNotObtained) {
			t.Errorf("err %v, want ErrNotObtained", e.Err)
		}
	}
	one := func(t *testing.T, rec *recorder) relock.Event {
		t.Helper()
		evs := rec.all()
		if len(evs) != 1 {
			t.Fatalf("events %v, want one", rec.kinds())
		}
		return evs[0]
	}

	t.Run("taken", func(t *testing.T) {
		rec := &recorder{}
		_, err := c.Obtain(ctx, "obs:taken", time.Second, relock.WithRetry(relock.NoRetry()), relock.WithObserver(rec))
		e := one(t, rec)
		check(t, e, 1)
		if e.Tries != 1 || e.Err != err || errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded) {
			t.Errorf("tries %d err %v; want 1 try and Obtain's own error %v, no context error", e.Tries, e.Err, err)
		}
	})
	t.Run("budget", func(t *testing.T) {
		rec := &recorder{}
		_, err := c.Obtain(ctx, "obs:taken", time.Second, relock.WithMaxWait(50*time.Millisecond), relock.WithObserver(rec))
		e := one(t, rec)
		check(t, e, 1)
		if e.Err != err || errors.Is(e.Err, context.DeadlineExceeded) {
			t.Errorf("err %v; want Obtain's own error %v, no context error", e.Err, err)
		}
		if e.Wait < 50*time.Millisecond {
			t.Errorf("wait %v, less than the 50ms budget", e.Wait)
		}
	})
	t.Run("context", func(t *testing.T) {
		rec := &recorder{}
		deadline := time.Now().Add(100 * time.Millisecond)
		cctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		_, err := c.Obtain(cctx, "obs:taken", time.Second, relock.WithObserver(rec))
		e := one(t, rec)
		check(t, e, 1)
		if e.Err != err || !errors.Is(e.Err, context.DeadlineExceeded) {
			t.Errorf("err %v; want Obtain's own error %v, matching DeadlineExceeded", e.Err, err)
		}
		if e.Time.Before(deadline.Add(-time.Millisecond)) {
			t.Errorf("not obtained at %v, before the context's deadline %v", e.Time, deadline)
		}
	})
	t.Run("context-ended-before", func(t *testing.T) {
		rec := &recorder{}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := c.Obtain(cctx, "obs:taken", time.Second, relock.WithObserver(rec))
		e := one(t, rec)
		check(t, e, 0)
		if e.Tries != 0 || e.Err != err || !errors.Is(e.Err, context.Canceled) {
			t.Errorf("tries %d err %v; want 0 tries and Obtain's own error %v, matching Canceled", e.Tries, e.Err, err)
		}
	})
	t.Run("invalid-argument-no-event", func(t *testing.T) {
		rec := &recorder{}
		if _, err := c.Obtain(ctx, "", time.Second, relock.WithObserver(rec)); !errors.Is(err, relock.ErrInvalidArgument) {
			t.Fatalf("Obtain(\"\") = %v, want ErrInvalidArgument", err)
		}
		if evs := rec.all(); len(evs) != 0 {
			t.Errorf("bad input emitted %v; nothing was tried", rec.kinds())
		}
	})
}

// stallOnceConn stalls transactions while stall is set, until their
// context ends, and says when one is stalled.
type stallOnceConn struct {
	*memdriver.Conn
	stall   atomic.Bool
	stalled chan struct{} // receives once per stalled call
}

func (c *stallOnceConn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	if c.stall.Load() {
		c.stalled <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}
	return c.Conn.Watch(ctx, keys, fn)
}

// A Release that stops an auto-refresh in flight is no refresh failure:
// the refresh that Release cancels emits nothing.
func TestObserverReleaseDuringRefresh(t *testing.T) {
	conn := &stallOnceConn{Conn: memdriver.New().Conn(), stalled: make(chan struct{}, 1)}
	rec := &recorder{}
	c, err := relock.New(conn, relock.WithObserver(rec))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	l, err := c.Obtain(ctx, "obs:release-during-refresh", 3*time.Second, relock.WithAutoRefresh())
	if err != nil {
		t.Fatal(err)
	}
	conn.stall.Store(true)
	select {
	case <-conn.stalled: // the auto-refresh is in flight, stuck
	case <-time.After(10 * time.Second):
		t.Fatal("no refresh within 10s")
	}
	conn.stall.Store(false)
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.kinds(), []relock.EventKind{relock.EventObtained, relock.EventReleased}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

// SlogObserver logs each event at its level with the fields that apply.
func TestSlogObserver(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store := memdriver.New()
	c, err := relock.New(store.Conn(), relock.WithObserver(relock.SlogObserver(logger)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	l, err := c.Obtain(ctx, "obs:slog", 5*time.Second, relock.WithFencing())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Refresh(ctx, 6*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TryObtain(ctx, "obs:slog", time.Second); !errors.Is(err, relock.ErrNotObtained) {
		t.Fatalf("TryObtain of a held lock = %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lost, err := c.Obtain(ctx, "obs:slog-lost", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	store.Advance(time.Hour)
	if err := lost.Refresh(ctx, 5*time.Second); !errors.Is(err, relock.ErrNotHeld) {
		t.Fatalf("Refresh of an expired key = %v, want ErrNotHeld", err)
	}

	var recs []map[string]any
	for line := range strings.Lines(buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad JSON line %q: %v", line, err)
		}
		recs = append(recs, m)
	}
	type want struct {
		msg, level string
		attrs      []string // present
		absent     []string
	}
	wants := []want{
		{"relock: obtained", "DEBUG", []string{"key", "wait", "tries", "fence"}, []string{"handed_over", "err", "held"}},
		{"relock: refreshed", "DEBUG", []string{"key", "ttl", "fence"}, []string{"err", "wait"}},
		{"relock: not_obtained", "INFO", []string{"key", "wait", "tries", "err"}, []string{"fence", "held"}},
		{"relock: released", "DEBUG", []string{"key", "held", "fence"}, []string{"err", "wait"}},
		{"relock: obtained", "DEBUG", []string{"key", "wait", "tries"}, []string{"fence"}},
		{"relock: lost", "WARN", []string{"key", "held", "err"}, []string{"fence", "wait"}},
	}
	if len(recs) != len(wants) {
		t.Fatalf("%d records, want %d:\n%s", len(recs), len(wants), buf.String())
	}
	for i, w := range wants {
		r := recs[i]
		if r["msg"] != w.msg || r["level"] != w.level {
			t.Errorf("record %d: %v at %v, want %q at %s", i, r["msg"], r["level"], w.msg, w.level)
		}
		for _, a := range w.attrs {
			if _, ok := r[a]; !ok {
				t.Errorf("record %d (%s) lacks %q: %v", i, w.msg, a, r)
			}
		}
		for _, a := range w.absent {
			if _, ok := r[a]; ok {
				t.Errorf("record %d (%s) has %q: %v", i, w.msg, a, r)
			}
		}
	}
	if recs[0]["key"] != "obs:slog" || recs[0]["tries"] != float64(1) || recs[0]["fence"] != float64(l.Fence()) {
		t.Errorf("obtained record %v: want key obs:slog, tries 1, fence %d", recs[0], l.Fence())
	}
	if recs[1]["ttl"] != "6s" {
		t.Errorf("refreshed record ttl %v, want \"6s\": durations are readable", recs[1]["ttl"])
	}
	for _, i := range []int{0, 3} {
		for _, a := range []string{"wait", "held"} {
			if v, ok := recs[i][a]; ok {
				if s, _ := v.(string); s == "" {
					t.Errorf("record %d %s = %v, want a duration string", i, a, v)
				} else if _, err := time.ParseDuration(s); err != nil {
					t.Errorf("record %d %s = %q: %v", i, a, s, err)
				}
			}
		}
	}
	if e, _ := recs[2]["err"].(string); !strings.Contains(e, relock.ErrNotObtained.Error()) {
		t.Errorf("not obtained record err %q, want it to say %q", e, relock.ErrNotObtained)
	}
	if e, _ := recs[5]["err"].(string); !strings.Contains(e, relock.ErrLost.Error()) || recs[5]["key"] != "obs:slog-lost" {
		t.Errorf("lost record %v, want key obs:slog-lost and err saying %q", recs[5], relock.ErrLost)
	}

	// A logger at Info drops the Debug events and keeps the rest.
	buf.Reset()
	info := relock.SlogObserver(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	for _, k := range []relock.EventKind{relock.EventObtained, relock.EventReleased, relock.EventRefreshed, relock.EventNotObtained, relock.EventRefreshFailed, relock.EventLost} {
		info.Observe(relock.Event{Kind: k, Key: "k", Err: errors.New("why")})
	}
	out := buf.String()
	for _, k := range []string{"obtained", "released", "refreshed"} {
		if strings.Contains(out, "msg=\"relock: "+k+"\"") {
			t.Errorf("an Info logger logged the Debug event %s:\n%s", k, out)
		}
	}
	for _, k := range []string{"level=INFO msg=\"relock: not_obtained\"", "level=WARN msg=\"relock: refresh_failed\"", "level=WARN msg=\"relock: lost\""} {
		if !strings.Contains(out, k) {
			t.Errorf("an Info logger did not log %s:\n%s", k, out)
		}
	}

	// Not obtained because Redis was unavailable, or refused permission,
	// is a warning; because it was taken, not.
	for err, level := range map[error]string{
		fmt.Errorf("relock: obtain: %w: %w", relock.ErrNotObtained, context.DeadlineExceeded):         "INFO",
		fmt.Errorf("relock: obtain: %w: %w", relock.ErrUnavailable, context.DeadlineExceeded):         "WARN",
		fmt.Errorf("relock: obtain: %w: NOPERM this user has no permissions", relock.ErrNoPermission): "WARN",
	} {
		buf.Reset()
		info.Observe(relock.Event{Kind: relock.EventNotObtained, Key: "k", Err: err})
		if want := "level=" + level + " msg=\"relock: not_obtained\""; !strings.Contains(buf.String(), want) {
			t.Errorf("not obtained with %v: logged %q, want %s", err, buf.String(), want)
		}
	}
}

func TestEventKindString(t *testing.T) {
	want := map[relock.EventKind]string{
		relock.EventObtained: "obtained", relock.EventNotObtained: "not_obtained", relock.EventReleased: "released",
		relock.EventRefreshed: "refreshed", relock.EventRefreshFailed: "refresh_failed", relock.EventLost: "lost",
		relock.EventRefreshing: "refreshing", relock.EventReleasing: "releasing", relock.EventDone: "done",
		0: "unknown", 200: "unknown",
	}
	for k, s := range want {
		if k.String() != s {
			t.Errorf("EventKind(%d).String() = %q, want %q", k, k.String(), s)
		}
	}
}
