package conformance

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/relock-go/relock"
)

// testPrimitives checks what relock's semaphore and read-write lock need
// of a driver beyond what the mutex needs: their scripts' replies (sorted
// sets, hashes, several keys written in one call) mapped as the driver
// package says, and several hand-overs announced by one script call (a
// release that frees two permits, a writer's release that wakes a batch
// of readers), each delivered to its waiter. Both need the script path;
// on the WATCH path they must be refused with ErrUnsupported.
func testPrimitives(t *testing.T, h Harness) {
	t.Run("Semaphore", paths(h, func(t *testing.T, s *setup) {
		if s.path == pathWatch {
			_, err := s.client.Semaphore(s.key("sem"), 2).TryObtain(bg(), time.Second)
			if !errors.Is(err, relock.ErrUnsupported) {
				t.Fatalf("Semaphore.TryObtain on the WATCH path = %v, want ErrUnsupported", err)
			}
			return
		}
		wakeSetup(t, s)
		k := s.key("sem")
		sem := s.client.Semaphore(k, 2)
		a := mustObtain(t)(sem.TryObtain(bg(), 10*time.Second))
		b := mustObtain(t)(sem.TryObtain(bg(), 10*time.Second))
		if l, err := sem.TryObtain(bg(), 10*time.Second); !errors.Is(err, relock.ErrNotObtained) {
			t.Fatalf("a third permit of 2: %v, %v; want ErrNotObtained", l, err)
		}
		info, err := sem.Inspect(bg())
		if err != nil {
			t.Fatalf("Inspect: %v", err)
		}
		wantTokens(t, "Inspect's holders", len(info.Holders), permitTokens(info.Holders), a, b)
		// Two waiters that never poll; raising the limit to 4 frees two
		// permits in one script call, announced twice.
		w1 := s.startPrimitiveWaiter(func(c *relock.Client, ctx context.Context) (*relock.Lock, error) {
			return c.Semaphore(k, 2).Obtain(ctx, 10*time.Second)
		})
		w2 := s.startPrimitiveWaiter(func(c *relock.Client, ctx context.Context) (*relock.Lock, error) {
			return c.Semaphore(k, 2).Obtain(ctx, 10*time.Second)
		})
		if err := sem.SetLimit(bg(), 4); err != nil {
			t.Fatalf("SetLimit(4): %v", err)
		}
		l1 := w1.wait(t, "a semaphore waiter when the limit rose")
		l2 := w2.wait(t, "a semaphore waiter when the limit rose")
		w1.wantWoken(t, l1, "the first of two semaphore waiters handed a permit by one SetLimit")
		w2.wantWoken(t, l2, "the second of two semaphore waiters handed a permit by one SetLimit")
		if err := sem.SetLimit(bg(), 0); err != nil {
			t.Fatalf("SetLimit(0): %v", err)
		}
		for _, l := range []*relock.Lock{a, b, l1, l2} {
			if err := l.Release(bg()); err != nil {
				t.Fatalf("Release of a permit: %v", err)
			}
		}
		if info, err := sem.Inspect(bg()); err != nil || len(info.Holders) != 0 {
			t.Fatalf("Inspect after every release: %+v, %v; want no holder", info, err)
		}
	}))
	t.Run("RWLock", paths(h, func(t *testing.T, s *setup) {
		if s.path == pathWatch {
			_, err := s.client.RWLock(s.key("rw")).TryObtainRead(bg(), time.Second)
			if !errors.Is(err, relock.ErrUnsupported) {
				t.Fatalf("RWLock.TryObtainRead on the WATCH path = %v, want ErrUnsupported", err)
			}
			return
		}
		wakeSetup(t, s)
		k := s.key("rw")
		rw := s.client.RWLock(k)
		wl := mustObtain(t)(rw.TryObtainWrite(bg(), 10*time.Second))
		if l, err := rw.TryObtainRead(bg(), 10*time.Second); !errors.Is(err, relock.ErrNotObtained) {
			t.Fatalf("a read lock while a writer holds: %v, %v; want ErrNotObtained", l, err)
		}
		var ws []*waiter
		for range 3 {
			ws = append(ws, s.startPrimitiveWaiter(func(c *relock.Client, ctx context.Context) (*relock.Lock, error) {
				return c.RWLock(k).ObtainRead(ctx, 10*time.Second)
			}))
		}
		if err := wl.Release(bg()); err != nil {
			t.Fatalf("Release of the write lock: %v", err)
		}
		var readers []*relock.Lock
		for i, w := range ws {
			l := w.wait(t, "a reader queued behind a writer")
			w.wantWoken(t, l, fmt.Sprintf("reader %d of 3 handed the lock by one writer's release", i+1))
			readers = append(readers, l)
		}
		info, err := rw.Inspect(bg())
		if err != nil {
			t.Fatalf("Inspect: %v", err)
		}
		if info.Writer != nil {
			t.Fatalf("Inspect after the batch: writer %+v; want none", *info.Writer)
		}
		wantTokens(t, "Inspect's readers after the batch", len(info.Readers), readerTokens(info.Readers), readers...)
		for _, l := range readers {
			if err := l.Release(bg()); err != nil {
				t.Fatalf("Release of a read lock: %v", err)
			}
		}
	}))
}

// permitTokens returns the tokens and TTLs Inspect read of a semaphore's
// holders.
func permitTokens(hs []relock.PermitInfo) map[string]time.Duration {
	m := map[string]time.Duration{}
	for _, h := range hs {
		m[h.Token] = h.TTL
	}
	return m
}

// readerTokens returns the tokens and TTLs Inspect read of a read-write
// lock's readers.
func readerTokens(rs []relock.RWHolder) map[string]time.Duration {
	m := map[string]time.Duration{}
	for _, r := range rs {
		m[r.Token] = r.TTL
	}
	return m
}

// wantTokens fails unless the n entries an Inspect read from its
// script's nested reply (got: token to TTL left) are exactly the tokens of
// want, each with a TTL left of the 10s they were taken for: a count
// alone passes a driver that mangles the strings of a nested reply.
func wantTokens(t *testing.T, what string, n int, got map[string]time.Duration, want ...*relock.Lock) {
	t.Helper()
	ok := n == len(want) && len(got) == len(want)
	for _, l := range want {
		if d, found := got[l.Token()]; !found || d <= 0 || d > 10*time.Second {
			ok = false
		}
	}
	if !ok {
		tokens := make([]string, len(want))
		for i, l := range want {
			tokens[i] = l.Token()
		}
		t.Fatalf("%s: %d entries, %v (token: TTL left); want exactly the tokens %q, each with a TTL left in (0, 10s]", what, n, got, tokens)
	}
}

// mustObtain returns a function that returns the lock an obtain returned,
// and fails t if it returned an error.
func mustObtain(t *testing.T) func(*relock.Lock, error) *relock.Lock {
	return func(l *relock.Lock, err error) *relock.Lock {
		t.Helper()
		if err != nil {
			t.Fatalf("obtain: %v", err)
		}
		return l
	}
}

// startPrimitiveWaiter starts obtain on a client of its own whose retry
// strategy never polls (an hour between tries), and returns once the
// client has subscribed and a try after the first has answered: it is
// then queued.
func (s *setup) startPrimitiveWaiter(obtain func(*relock.Client, context.Context) (*relock.Lock, error)) *waiter {
	s.t.Helper()
	c, p := s.other(relock.WithRetry(relock.FixedRetry(time.Hour)))
	ch := make(chan obtained, 1)
	ctx, cancel := context.WithCancel(context.Background())
	s.t.Cleanup(cancel)
	go func() {
		l, err := obtain(c, ctx)
		ch <- obtained{l, err}
	}()
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
