package relock_test

// Issue 8: lock names that never interfere (8.1), no lock dead on arrival
// (8.3) and misuse caught early (8.4). Deadlines (8.2) are in
// deadline_test.go.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/memdriver"
)

// 8.1: the sequence of the issue, replayed on a server. "job" and "{job}"
// used to share a queue and a channel: releasing "{job}" handed it to a
// waiter for "job", whose Obtain then returned while A still held "job".
func TestNamesJobAndTaggedJobNeverShareAHandover(t *testing.T) {
	eachServer(t, func(t *testing.T, s *srv) {
		job := s.key(t, "job")
		tagged := "{" + job + "}"
		a, b, c := s.client(t), s.client(t), s.client(t)
		ctx := ctxT(t, 15*time.Second)

		la, err := a.Obtain(ctx, job, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		lc, err := c.Obtain(ctx, tagged, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		type result struct {
			l   *relock.Lock
			err error
		}
		got := make(chan result, 1)
		go func() {
			l, err := b.Obtain(ctx, job, 5*time.Second)
			got <- result{l, err}
		}()
		time.Sleep(300 * time.Millisecond) // B subscribes and queues for job
		if err := lc.Release(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-got:
			t.Fatalf("B's Obtain(%q) returned (lock %v, err %v) after {job} was released, while A still holds job", job, r.l.Token(), r.err)
		case <-time.After(500 * time.Millisecond):
		}
		if v, _ := s.get(t, job); v != la.Token() {
			t.Fatalf("job holds %q, want A's token %q", v, la.Token())
		}
		if v, ok := s.get(t, tagged); ok {
			t.Fatalf("{job} was left holding %q after its release; nobody waited for it", v)
		}
		// A's release hands job to B, its real waiter.
		if err := la.Release(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-got:
			if r.err != nil {
				t.Fatalf("B never got job after A released it: %v", r.err)
			}
			if v, _ := s.get(t, job); v != r.l.Token() {
				t.Fatalf("B's lock returned but job holds %q, not B's token", v)
			}
			if err := r.l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("B never got job after A released it")
		}
	})
}

// 8.1: names of the form "{tag}:relock:..." are relock's companion keys;
// a lock may not be named so, and nothing is sent.
func TestObtainRejectsReservedNames(t *testing.T) {
	store := memdriver.New()
	c := newClient(t, store.Conn())
	ctx := ctxT(t, 5*time.Second)
	for _, name := range []string{"{x}:relock:q:x", "{job}:relock:f:job", "{job}:relock:c:job", "{a}:relock:w:a:0123456789abcdef0123456789abcdef"} {
		if l, err := c.Obtain(ctx, name, time.Second); !errors.Is(err, relock.ErrInvalidArgument) {
			t.Errorf("Obtain(%q) = %v, %v; want ErrInvalidArgument", name, l, err)
		}
		if err := c.Do(ctx, name, time.Second, func(context.Context) error { return nil }); !errors.Is(err, relock.ErrInvalidArgument) {
			t.Errorf("Do(%q) = %v; want ErrInvalidArgument", name, err)
		}
	}
	if n := store.Commands(); n != 0 {
		t.Fatalf("%d commands sent for reserved names, want none", n)
	}
}

// 8.3: a TTL too short to leave any validity is refused.
func TestTTLBelowMinimumIsInvalid(t *testing.T) {
	store := memdriver.New()
	c := newClient(t, store.Conn())
	ctx := ctxT(t, 5*time.Second)
	for _, ttl := range []time.Duration{time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 9 * time.Millisecond} {
		if _, err := c.Obtain(ctx, "k", ttl); !errors.Is(err, relock.ErrInvalidArgument) {
			t.Errorf("Obtain with TTL %v = %v, want ErrInvalidArgument", ttl, err)
		}
		if err := c.Do(ctx, "k", ttl, func(context.Context) error { return nil }); !errors.Is(err, relock.ErrInvalidArgument) {
			t.Errorf("Do with TTL %v = %v, want ErrInvalidArgument", ttl, err)
		}
	}
	if n := store.Commands(); n != 0 {
		t.Fatalf("%d commands sent for bad TTLs, want none", n)
	}
	l, err := c.Obtain(ctx, "k", 10*time.Millisecond)
	if err != nil {
		t.Fatalf("Obtain with TTL 10ms: %v", err)
	}
	if err := l.Refresh(ctx, 5*time.Millisecond); !errors.Is(err, relock.ErrInvalidArgument) {
		t.Errorf("Refresh(5ms) = %v, want ErrInvalidArgument", err)
	}
}

// lateConn is a memdriver connection whose SET NX takes effect at once but
// whose reply arrives only after the TTL has passed, for its first late
// calls: a stalled server, or a slow network. The key it writes lives far
// longer than asked, as when the server's clock is behind ours, so a lock
// not given back stays.
type lateConn struct {
	*memdriver.Conn
	late    atomic.Int64 // how many more replies come late; <0: all
	setnx   atomic.Int64 // SET NX calls
	refused atomic.Int64 // SET NX calls that found the key taken
}

func (c *lateConn) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	c.setnx.Add(1)
	if c.late.Load() == 0 {
		ok, err := c.Conn.SetNX(ctx, key, value, ttl)
		if err == nil && !ok {
			c.refused.Add(1)
		}
		return ok, err
	}
	c.late.Add(-1)
	ok, err := c.Conn.SetNX(ctx, key, value, 100*ttl)
	if err == nil && !ok {
		c.refused.Add(1)
	}
	t := time.NewTimer(ttl + 5*time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return ok, err
	case <-ctx.Done():
		return false, ctx.Err() // written, reply lost
	}
}

// 8.3: a win whose reply came after the lock's validity is a failed try:
// the key is given back and Obtain goes on; the lock it returns is alive.
func TestObtainNeverReturnsALockPastItsValidity(t *testing.T) {
	store := memdriver.New()
	conn := &lateConn{Conn: store.Conn()}
	conn.late.Store(2)
	c := newClient(t, conn)
	ctx := ctxT(t, 10*time.Second)
	l, err := c.Obtain(ctx, "k", 40*time.Millisecond, relock.WithRetry(relock.FixedRetry(5*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if !now.Before(l.ValidUntil()) {
		t.Fatalf("Obtain returned a lock valid until %v, already past at %v", l.ValidUntil(), now)
	}
	select {
	case <-l.Done():
		t.Fatalf("Obtain returned a lock whose Done is closed: %v", l.Err())
	default:
	}
	if n := conn.setnx.Load(); n < 3 {
		t.Fatalf("%d tries, want the two late wins given back and a third try", n)
	}
	if n := conn.refused.Load(); n != 0 {
		t.Fatalf("%d tries found the key taken: a late win was not given back", n)
	}
	if v, _ := memGet(t, store, "k"); v != l.Token() {
		t.Fatalf("the key holds %q, want the lock's token", v)
	}
}

// 8.3: when every win comes too late, Obtain fails within its budget, and
// no key is left with its token.
func TestObtainFailsRatherThanReturnADeadLock(t *testing.T) {
	store := memdriver.New()
	conn := &lateConn{Conn: store.Conn()}
	conn.late.Store(-1)
	c, err := relock.New(conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 10*time.Second)
	l, err := c.Obtain(ctx, "k", 40*time.Millisecond, relock.WithMaxWait(300*time.Millisecond), relock.WithRetry(relock.FixedRetry(5*time.Millisecond)))
	if err == nil {
		t.Fatalf("Obtain returned a lock (valid until %v, now %v) from replies that all came after the TTL", l.ValidUntil(), time.Now())
	}
	if !errors.Is(err, relock.ErrNotObtained) {
		t.Fatalf("Obtain = %v, want ErrNotObtained", err)
	}
	if err := c.Close(); err != nil { // waits for any clean-up still running
		t.Fatal(err)
	}
	if v, ok := memGet(t, store, "k"); ok {
		t.Fatalf("the key still holds %q after the failed Obtain", v)
	}
}

// 8.3: Err and Done report the lock as ended as soon as the clock passes
// ValidUntil, without waiting for a timer to fire.
func TestErrReportsEndAtValidUntil(t *testing.T) {
	c := newClient(t, memdriver.New().Conn())
	ctx := ctxT(t, 10*time.Second)
	for i := range 20 {
		l, err := c.Obtain(ctx, "k", 30*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		done := l.Done() // makes the expiry timer: the lock's end must not wait for it
		if i%2 == 1 {
			done = nil // first use after ValidUntil
		}
		until := l.ValidUntil()
		for time.Now().Before(until) {
		}
		err = l.Err()
		if err == nil {
			t.Fatalf("try %d: Err() = nil %v after ValidUntil", i, time.Since(until))
		}
		if !errors.Is(err, relock.ErrLost) {
			t.Fatalf("try %d: Err() = %v, want ErrLost", i, err)
		}
		if done == nil {
			done = l.Done()
		}
		select {
		case <-done:
		default:
			t.Fatalf("try %d: Done not closed after ValidUntil although Err = %v", i, err)
		}
		if err := l.Release(ctx); err != nil && !errors.Is(err, relock.ErrNotHeld) {
			t.Fatal(err)
		}
	}
}

// 8.4: the accessors of a nil *Lock return zero values; Err and Done say
// it is not a lock.
func TestNilLockAccessorsDoNotPanic(t *testing.T) {
	var l *relock.Lock
	for name, f := range map[string]func(){
		"Key":        func() { _ = l.Key() },
		"RedisKey":   func() { _ = l.RedisKey() },
		"Token":      func() { _ = l.Token() },
		"Fence":      func() { _ = l.Fence() },
		"ValidUntil": func() { _ = l.ValidUntil() },
		"ObtainedAt": func() { _ = l.ObtainedAt() },
		"Err": func() {
			if err := l.Err(); !errors.Is(err, relock.ErrInvalidArgument) {
				t.Errorf("nil Lock's Err() = %v, want ErrInvalidArgument", err)
			}
		},
		"Done": func() {
			select {
			case <-l.Done():
			default:
				t.Error("nil Lock's Done() is not closed")
			}
		},
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s on a nil *Lock panicked: %v", name, r)
				}
			}()
			f()
		}()
	}
}

// 8.4: Do never writes into the caller's options slice, even when it has
// room to spare; callers share such slices across goroutines.
func TestDoLeavesSharedOptionsAlone(t *testing.T) {
	c := newClient(t, memdriver.New().Conn())
	ctx := ctxT(t, 10*time.Second)
	opts := make([]relock.Option, 1, 10)
	opts[0] = relock.WithMaxWait(time.Second)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 5 {
				key := strings.Repeat("k", g+1) + string(rune('a'+i))
				if err := c.Do(ctx, key, time.Second, func(context.Context) error { return nil }, opts...); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for i, o := range opts[:cap(opts)] {
		if i > 0 && o != nil {
			t.Fatalf("Do wrote an option into element %d of the caller's array", i)
		}
	}
}

// 8.4: when Do's lock is lost while fn runs, Do's error says so with
// ErrLost.
func TestDoErrorMatchesErrLostWhenLockIsLost(t *testing.T) {
	check := func(t *testing.T, c *relock.Client, key string, del func()) {
		ctx := ctxT(t, 10*time.Second)
		started := make(chan struct{})
		go func() {
			<-started
			del()
		}()
		err := c.Do(ctx, key, 150*time.Millisecond, func(fctx context.Context) error {
			close(started)
			select {
			case <-fctx.Done():
				return fctx.Err()
			case <-time.After(5 * time.Second):
				return errors.New("fn's context never ended after the key was deleted")
			}
		})
		if !errors.Is(err, relock.ErrLost) {
			t.Fatalf("Do = %v, want an error matching ErrLost", err)
		}
	}
	t.Run("watch", func(t *testing.T) {
		store := memdriver.New()
		check(t, newClient(t, store.Conn()), "k", func() { memDel(t, store, "k") })
	})
	eachServer(t, func(t *testing.T, s *srv) {
		key := s.key(t, "do-lost")
		check(t, s.client(t), key, func() { s.do(t, "DEL", key) })
	})
}

// 8.4: LimitRetry(DefaultRetry(), n) keeps waiting for the hand-over: the
// waiter gets the lock on release, where polling with n retries of the
// default backoff (2 ms, 4 ms, ... ) would have given up long before.
func TestLimitRetryOfDefaultKeepsHandover(t *testing.T) {
	eachServer(t, func(t *testing.T, s *srv) {
		key := s.key(t, "limit")
		a, b := s.client(t), s.client(t)
		ctx := ctxT(t, 10*time.Second)
		la, err := a.Obtain(ctx, key, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		type result struct {
			l   *relock.Lock
			err error
			at  time.Time
		}
		got := make(chan result, 1)
		go func() {
			l, err := b.Obtain(ctx, key, 10*time.Second, relock.WithRetry(relock.LimitRetry(relock.DefaultRetry(), 6)))
			got <- result{l, err, time.Now()}
		}()
		time.Sleep(300 * time.Millisecond)
		released := time.Now()
		if err := la.Release(ctx); err != nil {
			t.Fatal(err)
		}
		r := <-got
		if r.err != nil {
			t.Fatalf("the waiter gave up (%v) instead of taking the hand-over", r.err)
		}
		defer r.l.Release(ctx)
		if d := r.at.Sub(released); d > 500*time.Millisecond {
			t.Fatalf("the waiter got the lock %v after the release, want a prompt hand-over", d)
		}
	})
}

// countConn counts SET NX calls: one per try on the WATCH path.
type countConn struct {
	*memdriver.Conn
	setnx atomic.Int64
}

func (c *countConn) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	c.setnx.Add(1)
	return c.Conn.SetNX(ctx, key, value, ttl)
}

// 8.4: a strategy that answers negative waits cannot make Obtain spin.
func TestRetryFuncNegativeWaitDoesNotSpin(t *testing.T) {
	store := memdriver.New()
	if _, err := store.Conn().SetNX(context.Background(), "k", "other", time.Minute); err != nil {
		t.Fatal(err)
	}
	conn := &countConn{Conn: store.Conn()}
	c := newClient(t, conn)
	negative := relock.RetryFunc(func(int) (time.Duration, bool) { return -time.Second, true })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Obtain(ctx, "k", time.Second, relock.WithRetry(negative))
	if !errors.Is(err, relock.ErrNotObtained) {
		t.Fatalf("Obtain = %v, want ErrNotObtained", err)
	}
	n := conn.setnx.Load()
	t.Logf("%d tries in 200ms with a strategy answering -1s", n)
	if n > 250 {
		t.Fatalf("%d tries in 200ms: a negative wait made Obtain spin (want at most ~1 per ms)", n)
	}
}

// 8.4: a quorum of one master passed three times is refused.
func TestNewQuorumRejectsTheSameConnTwice(t *testing.T) {
	conn := memdriver.New().Conn()
	if c, err := relock.NewQuorum([]driver.Conn{conn, conn, conn}); !errors.Is(err, relock.ErrInvalidArgument) {
		if c != nil {
			_ = c.Close()
		}
		t.Fatalf("NewQuorum(one conn thrice) = %v, want ErrInvalidArgument", err)
	}
	other := memdriver.New().Conn()
	if c, err := relock.NewQuorum([]driver.Conn{conn, other, conn}); !errors.Is(err, relock.ErrInvalidArgument) {
		if c != nil {
			_ = c.Close()
		}
		t.Fatalf("NewQuorum(a, b, a) = %v, want ErrInvalidArgument", err)
	}
}

// 8.4: a quorum Release succeeds only when a majority released; when only
// a minority still held the lock, the holder is told it was not held.
func TestQuorumReleaseByMinorityIsNotHeld(t *testing.T) {
	stores := []*memdriver.Store{memdriver.New(), memdriver.New(), memdriver.New()}
	c, err := relock.NewQuorum([]driver.Conn{stores[0].Conn(), stores[1].Conn(), stores[2].Conn()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t, 10*time.Second)
	l, err := c.Obtain(ctx, "k", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Obtain returns once a majority holds the key: wait for the third.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		n := 0
		for _, s := range stores {
			if v, _ := memGet(t, s, "k"); v == l.Token() {
				n++
			}
		}
		if n == len(stores) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the straggling master never got the key")
		}
	}
	memDel(t, stores[0], "k")
	memDel(t, stores[1], "k")
	if err := l.Release(ctx); !errors.Is(err, relock.ErrNotHeld) {
		t.Fatalf("Release with only 1 of 3 masters holding = %v, want ErrNotHeld", err)
	}
	if _, ok := memGet(t, stores[2], "k"); ok {
		t.Fatal("the minority's key was left behind by Release")
	}
}

// 8.4: Close gives back the auto-refreshed locks it stops refreshing.
func TestCloseReleasesAutoRefreshedLocks(t *testing.T) {
	check := func(t *testing.T, conn driver.Conn, key string, held func() bool) {
		c, err := relock.New(conn)
		if err != nil {
			t.Fatal(err)
		}
		ctx := ctxT(t, 10*time.Second)
		l, err := c.Obtain(ctx, key, 10*time.Second, relock.WithAutoRefresh())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if held() {
			t.Fatal("the key still holds the lock after Close")
		}
		if err := l.Err(); !errors.Is(err, relock.ErrClosed) {
			t.Fatalf("Err() after Close = %v, want ErrClosed", err)
		}
	}
	t.Run("watch", func(t *testing.T) {
		store := memdriver.New()
		check(t, store.Conn(), "k", func() bool { _, ok := memGet(t, store, "k"); return ok })
	})
	eachServer(t, func(t *testing.T, s *srv) {
		key := s.key(t, "close")
		check(t, s.conn(t), key, func() bool { _, ok := s.get(t, key); return ok })
	})
}

// 8.4: client defaults are checked in New and NewQuorum, not at the first
// Obtain.
func TestNewValidatesDefaults(t *testing.T) {
	if c, err := relock.New(memdriver.New().Conn(), relock.WithReplicas(1, time.Second)); !errors.Is(err, relock.ErrUnsupported) {
		if c != nil {
			_ = c.Close()
		}
		t.Errorf("New(a driver without ReplicaWaiter, WithReplicas) = %v, want ErrUnsupported", err)
	}
	conns := []driver.Conn{memdriver.New().Conn(), memdriver.New().Conn(), memdriver.New().Conn()}
	if c, err := relock.NewQuorum(conns, relock.WithFencing()); !errors.Is(err, relock.ErrUnsupported) {
		if c != nil {
			_ = c.Close()
		}
		t.Errorf("NewQuorum(..., WithFencing()) = %v, want ErrUnsupported", err)
	}
}
