package relock_test

// Issue 8.2, the core's side: every call returns by its context's deadline
// (and Obtain by its wait budget) plus a small margin, whatever the driver
// does, and the clean-up that must still happen goes on in the background,
// waited for by Client.Close.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredislib "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/memdriver"
)

// Timing of the deadline tests. The margin is generous, for a loaded
// 2-core machine under -race; the old code overran by a second or more.
const (
	callDeadline = 200 * time.Millisecond
	callMargin   = 400 * time.Millisecond
)

// stallable is a driver behind a gate.
type stallable interface {
	driver.Conn
	stall(bool)
}

func (g *gate) stall(on bool) { g.stalled.Store(on) }

// stallDrivers runs f with a WATCH-path driver (memdriver) and a
// script-path driver (go-redis on a miniredis), each behind a gate.
func stallDrivers(t *testing.T, f func(t *testing.T, conn stallable)) {
	t.Run("watch", func(t *testing.T) {
		f(t, &stallWatch{c: memdriver.New().Conn()})
	})
	t.Run("script", func(t *testing.T) {
		m := miniredis.RunT(t)
		rdb := goredislib.NewClient(&goredislib.Options{Addr: m.Addr(), MaxRetries: -1})
		t.Cleanup(func() { _ = rdb.Close() })
		f(t, &stallScript{c: goredis.New(rdb)})
	})
}

// timed runs call with a context of callDeadline and fails t if it takes
// longer than callDeadline + callMargin. It returns call's error.
func timed(t *testing.T, what string, call func(ctx context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
	defer cancel()
	start := time.Now()
	err := call(ctx)
	took := time.Since(start)
	t.Logf("%s: returned after %v (deadline %v): %v", what, took, callDeadline, err)
	if took > callDeadline+callMargin {
		t.Errorf("%s took %v against a %v deadline (margin %v)", what, took, callDeadline, callMargin)
	}
	return err
}

func TestCallsReturnByTheirDeadline(t *testing.T) {
	stallDrivers(t, func(t *testing.T, conn stallable) {
		c, err := relock.New(conn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		callsReturnByTheirDeadline(t, c, conn)
	})
	t.Run("quorum", func(t *testing.T) {
		q := quorumStall{&stallWatch{c: memdriver.New().Conn()}, &stallWatch{c: memdriver.New().Conn()}, &stallWatch{c: memdriver.New().Conn()}}
		c, err := relock.NewQuorum([]driver.Conn{q[0], q[1], q[2]})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		callsReturnByTheirDeadline(t, c, q)
	})
}

// quorumStall stalls every master of a quorum at once.
type quorumStall []*stallWatch

func (q quorumStall) stall(on bool) {
	for _, s := range q {
		s.stall(on)
	}
}

func callsReturnByTheirDeadline(t *testing.T, c *relock.Client, conn interface{ stall(bool) }) {
	{
		// held obtains a lock while the driver answers, then stalls it.
		held := func(key string) *relock.Lock {
			conn.stall(false)
			// A short context: on a quorum, the obtain's straggler may
			// meet the stall below and waits for this context to end,
			// and Close waits for it.
			l, err := c.Obtain(ctxT(t, time.Second), key, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conn.stall(true)
			return l
		}
		wantDeadline := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s = %v, want an error matching context.DeadlineExceeded", what, err)
			}
		}

		conn.stall(true)
		err := timed(t, "Obtain", func(ctx context.Context) error { _, err := c.Obtain(ctx, "obtain", 10*time.Second); return err })
		wantDeadline("Obtain", err)
		// No try got an answer: Redis is unavailable, the lock may well
		// be free.
		if !errors.Is(err, relock.ErrUnavailable) || errors.Is(err, relock.ErrNotObtained) {
			t.Errorf("Obtain = %v, want ErrUnavailable and not ErrNotObtained", err)
		}
		err = timed(t, "TryObtain", func(ctx context.Context) error { _, err := c.TryObtain(ctx, "try", 10*time.Second); return err })
		wantDeadline("TryObtain", err)
		err = timed(t, "Do (obtain)", func(ctx context.Context) error {
			return c.Do(ctx, "do", 10*time.Second, func(context.Context) error { return nil })
		})
		wantDeadline("Do (obtain)", err)
		err = timed(t, "Inspect", func(ctx context.Context) error { _, err := c.Inspect(ctx, "obtain"); return err })
		wantDeadline("Inspect", err)

		l := held("release")
		wantDeadline("Release", timed(t, "Release", l.Release))
		l = held("refresh")
		wantDeadline("Refresh", timed(t, "Refresh", func(ctx context.Context) error { return l.Refresh(ctx, 10*time.Second) }))
		l = held("ttl")
		wantDeadline("TTL", timed(t, "TTL", func(ctx context.Context) error { _, err := l.TTL(ctx); return err }))

		// Do whose release stalls: it returns by the deadline and leaves
		// the release to the background.
		conn.stall(false)
		timed(t, "Do (release)", func(ctx context.Context) error {
			return c.Do(ctx, "do-release", 10*time.Second, func(context.Context) error {
				conn.stall(true)
				return nil
			})
		})
		conn.stall(false)
	}
}

// The clean-up after a try whose outcome is unknown runs in the
// background: the caller is not held, the key is cleaned up soon after,
// and Close waits for it, leaving no goroutine behind.
func TestCleanUpRunsInTheBackgroundAndCloseWaitsForIt(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	store := memdriver.New()
	conn := &replyLost{Conn: store.Conn()}
	c, err := relock.New(conn)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
	_, err = c.Obtain(ctx, "k", 10*time.Second)
	cancel()
	took := time.Since(start)
	if !errors.Is(err, relock.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, relock.ErrNotObtained) {
		t.Fatalf("Obtain = %v, want ErrUnavailable and DeadlineExceeded, not ErrNotObtained", err)
	}
	if took > callDeadline+callMargin {
		t.Fatalf("Obtain took %v against a %v deadline: the clean-up held the caller", took, callDeadline)
	}
	// The SET went through, its reply was lost: our token is in the key
	// until the clean-up takes it out.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := memGet(t, store, "k"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the background clean-up never removed our token")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// A clean-up that cannot get through (the driver stalls) goes on
	// until Close, which cuts it short and waits for it.
	conn.stallAll.stall(true)
	start = time.Now()
	ctx, cancel = context.WithTimeout(context.Background(), callDeadline)
	_, err = c.Obtain(ctx, "k2", 10*time.Second)
	cancel()
	took = time.Since(start)
	if !errors.Is(err, relock.ErrUnavailable) {
		t.Fatalf("Obtain = %v, want ErrUnavailable", err)
	}
	if took > callDeadline+callMargin {
		t.Fatalf("Obtain took %v against a %v deadline: the stalled clean-up held the caller", took, callDeadline)
	}
	start = time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close took %v with a stalled clean-up running", time.Since(start))
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close took %v", d)
	}
	goleak.VerifyNone(t, ignore)
}

// replyLost is a memdriver connection whose SET NX takes effect but whose
// reply never comes (the caller's context ends first); with stallAll,
// every call stalls until its context ends.
type replyLost struct {
	*memdriver.Conn
	stallAll gate
}

func (c *replyLost) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	if err := c.stallAll.wait(ctx); err != nil {
		return false, err
	}
	if _, err := c.Conn.SetNX(ctx, key, value, ttl); err != nil {
		return false, err
	}
	<-ctx.Done()
	return false, ctx.Err()
}

func (c *replyLost) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	if err := c.stallAll.wait(ctx); err != nil {
		return err
	}
	return c.Conn.Watch(ctx, keys, fn)
}

// WithMaxWait bounds Obtain's network I/O too: against a driver that never
// answers, Obtain returns by the budget plus lastTryGrace (100 ms).
func TestMaxWaitBoundsNetworkIO(t *testing.T) {
	stallDrivers(t, func(t *testing.T, conn stallable) {
		c := newClient(t, conn)
		conn.stall(true)
		ctx := ctxT(t, 10*time.Second) // the budget, not this, must end the call
		const budget = 300 * time.Millisecond
		start := time.Now()
		_, err := c.Obtain(ctx, "k", 10*time.Second, relock.WithMaxWait(budget))
		took := time.Since(start)
		t.Logf("Obtain with WithMaxWait(%v) against a silent driver returned after %v: %v", budget, took, err)
		if !errors.Is(err, relock.ErrUnavailable) || errors.Is(err, relock.ErrNotObtained) {
			t.Fatalf("Obtain = %v, want ErrUnavailable (no answer), not ErrNotObtained", err)
		}
		if limit := budget + 100*time.Millisecond + callMargin; took > limit {
			t.Fatalf("Obtain took %v with a %v budget, want at most %v", took, budget, limit)
		}
		conn.stall(false)
	})
}

// slowRelease is a memdriver connection on which every transaction (the
// WATCH path's release) stalls until its context ends.
type slowRelease struct{ *memdriver.Conn }

func (c slowRelease) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	<-ctx.Done()
	return ctx.Err()
}

// A quorum try that loses the vote releases what it took in the
// background: the caller does not wait for a slow master.
func TestQuorumLosingVoteReleasesInBackground(t *testing.T) {
	stores := []*memdriver.Store{memdriver.New(), memdriver.New(), memdriver.New()}
	for _, s := range stores[1:] {
		if _, err := s.Conn().SetNX(context.Background(), "k", "other", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	c, err := relock.NewQuorum([]driver.Conn{slowRelease{stores[0].Conn()}, stores[1].Conn(), stores[2].Conn()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 10*time.Second)
	start := time.Now()
	_, err = c.TryObtain(ctx, "k", 10*time.Second)
	took := time.Since(start)
	t.Logf("quorum TryObtain that lost the vote returned after %v", took)
	if !errors.Is(err, relock.ErrNotObtained) {
		t.Fatalf("TryObtain = %v, want ErrNotObtained", err)
	}
	if took > callMargin {
		t.Fatalf("TryObtain took %v: it waited for the release of the lost vote", took)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}
