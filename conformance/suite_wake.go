package conformance

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/relock-go/relock"
)

// wakeSetup skips unless the driver can wake waiters: the script path with
// driver.Subscriber.
func wakeSetup(t *testing.T, s *setup) {
	t.Helper()
	if s.path != pathScript {
		t.Skip("waking waiters needs the script path: the WATCH path polls")
	}
	if s.probe.sub == nil {
		t.Skip("driver does not implement driver.Subscriber: waiters poll")
	}
}

// waiter is an Obtain in progress on a client of its own.
type waiter struct {
	probe *probe
	got   <-chan obtained
}

// startWaiter starts an Obtain whose retry strategy never polls (an hour
// between tries), and returns once its try has put it in the queue.
func (s *setup) startWaiter(key string, ctx context.Context) *waiter {
	s.t.Helper()
	c, p := s.other(relock.WithRetry(relock.FixedRetry(time.Hour)))
	ch := make(chan obtained, 1)
	go func() {
		l, err := c.Obtain(ctx, key, 10*time.Second)
		ch <- obtained{l, err}
	}()
	// The first try fails, the client subscribes, and the second try
	// queues it.
	deadline := time.Now().Add(10 * time.Second)
	for p.total("EvalSha returned") < 2 || p.total("Subscribe") < 1 {
		if time.Now().After(deadline) {
			s.t.Fatal("the waiter did not subscribe and queue within 10s")
		}
		select {
		case r := <-ch:
			s.t.Fatalf("the waiter returned before waiting: %v", r.err)
		case <-time.After(time.Millisecond):
		}
	}
	return &waiter{probe: p, got: ch}
}

func (w *waiter) wait(t *testing.T, why string) *relock.Lock {
	t.Helper()
	select {
	case r := <-w.got:
		if r.err != nil {
			t.Fatalf("%s: %v", why, r.err)
		}
		return r.lock
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the waiter did not get the lock within 10s", why)
		return nil
	}
}

// wantWoken checks promptness: the hand-over of l was announced to the
// waiter's subscription (the release script publishes "token:..."), so
// the waiter was woken by it, not left to find the lock at its next poll.
// (A renewal that happens to run between the release and the message may
// find the lock first; the announcement must still arrive.)
func (w *waiter) wantWoken(t *testing.T, l *relock.Lock, who string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !w.probe.heard(l.Token() + ":") {
		if time.Now().After(deadline) {
			t.Fatalf("%s got the lock, but its subscription never delivered the hand-over: it polled instead of being woken", who)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func testWake(t *testing.T, h Harness) {
	t.Run("OnRelease", paths(h, func(t *testing.T, s *setup) {
		wakeSetup(t, s)
		k := s.key("k")
		a := s.mustObtain(s.client, k, 10*time.Second)
		w := s.startWaiter(k, bg())
		if err := a.Release(bg()); err != nil {
			t.Fatalf("Release: %v", err)
		}
		l := w.wait(t, "a waiter on release")
		w.wantWoken(t, l, "the waiter")
		s.wantHolder(k, l.Token(), "the woken waiter's key")
		if d, err := l.TTL(bg()); err != nil || d <= 5*time.Second {
			t.Fatalf("TTL of a handed-over lock = %v, %v; want the waiter's 10s", d, err)
		}
		if err := l.Release(bg()); err != nil {
			t.Fatalf("Release of a handed-over lock: %v", err)
		}
		s.wantGone(k, "after the last release")
	}))
	t.Run("LostNotification", paths(h, func(t *testing.T, s *setup) {
		wakeSetup(t, s)
		k := s.key("k")
		a := s.mustObtain(s.client, k, 10*time.Second)
		w := s.startWaiter(k, bg())
		w.probe.dropping.Store(true)
		if err := a.Release(bg()); err != nil {
			t.Fatalf("Release: %v", err)
		}
		l := w.wait(t, "a waiter whose notification was lost")
		s.wantHolder(k, l.Token(), "the waiter's key")
	}))
	t.Run("HolderExpires", paths(h, func(t *testing.T, s *setup) {
		wakeSetup(t, s)
		k := s.key("k")
		s.mustObtain(s.client, k, 300*time.Millisecond)
		w := s.startWaiter(k, bg())
		s.advance(400 * time.Millisecond)
		l := w.wait(t, "a waiter on a lock that expires")
		s.wantHolder(k, l.Token(), "the waiter's key")
	}))
	t.Run("FIFO", paths(h, func(t *testing.T, s *setup) {
		wakeSetup(t, s)
		k := s.key("k")
		held := s.mustObtain(s.client, k, 10*time.Second)
		var ws []*waiter
		for range 3 {
			ws = append(ws, s.startWaiter(k, bg()))
		}
		for i, w := range ws {
			if err := held.Release(bg()); err != nil {
				t.Fatalf("Release: %v", err)
			}
			held = w.wait(t, "a queued waiter")
			w.wantWoken(t, held, fmt.Sprintf("waiter %d", i))
			for j, other := range ws[i+1:] {
				select {
				case r := <-other.got:
					t.Fatalf("waiter %d got the lock (%v) before waiter %d, queued earlier", i+j+1, r.err, i)
				default:
				}
			}
		}
		if err := held.Release(bg()); err != nil {
			t.Fatal(err)
		}
	}))
	t.Run("CancelledWaiterLeaves", paths(h, func(t *testing.T, s *setup) {
		wakeSetup(t, s)
		k := s.key("k")
		a := s.mustObtain(s.client, k, 10*time.Second)
		ctx, cancel := context.WithCancel(bg())
		w := s.startWaiter(k, ctx)
		cancel()
		select {
		case r := <-w.got:
			wantIs(t, "a cancelled waiter", r.err, relock.ErrNotObtained, context.Canceled)
		case <-time.After(10 * time.Second):
			t.Fatal("a cancelled waiter did not return")
		}
		if err := a.Release(bg()); err != nil {
			t.Fatalf("Release: %v", err)
		}
		s.wantCleanedUp(k, "a release after the only waiter gave up: nothing may be handed to it")
		s.mustObtain(s.client, k, time.Second)
	}))
	t.Run("CloseEndsWaitersAndSubscription", paths(h, func(t *testing.T, s *setup) {
		wakeSetup(t, s)
		k := s.key("k")
		a := s.mustObtain(s.client, k, 10*time.Second)
		c, p := s.other(relock.WithRetry(relock.FixedRetry(time.Hour)))
		got := make(chan error, 1)
		go func() { _, err := c.Obtain(bg(), k, 10*time.Second); got <- err }()
		deadline := time.Now().Add(10 * time.Second)
		for p.subs.Load() == 0 || p.total("EvalSha returned") < 2 {
			if time.Now().After(deadline) {
				t.Fatal("the waiter did not subscribe")
			}
			time.Sleep(time.Millisecond)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		select {
		case err := <-got:
			if !errors.Is(err, relock.ErrClosed) {
				t.Fatalf("a waiter of a closed client got %v, want ErrClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close left a waiter waiting")
		}
		if n := p.subs.Load(); n != 0 {
			t.Fatalf("%d subscriptions still open after Close", n)
		}
		if err := a.Release(bg()); err != nil {
			t.Fatal(err)
		}
		s.wantCleanedUp(k, "after the release: the closed client's waiter left the queue")
	}))
	t.Run("ReleaseWithoutWaiterIsOneCall", paths(h, func(t *testing.T, s *setup) {
		wakeSetup(t, s)
		// A first release may pay for NOSCRIPT (EVALSHA, then EVAL) on a
		// server or cluster node that has not seen the script yet.
		if err := s.mustObtain(s.client, s.key("warm"), 10*time.Second).Release(bg()); err != nil {
			t.Fatal(err)
		}
		l := s.mustObtain(s.client, s.key("k"), 10*time.Second)
		before := s.probe.total(allCalls...)
		if err := l.Release(bg()); err != nil {
			t.Fatal(err)
		}
		if n := s.probe.total(allCalls...) - before; n != 1 {
			t.Fatalf("Release without waiters made %d driver calls, want 1", n)
		}
	}))
}
