package relock_test

// How Obtain and the lock's calls tell "Redis is unavailable" from "the
// lock is taken", on the in-memory driver with faults injected. The same,
// through each adapter against real faults (no answer, refused port, TLS
// mismatch, OOM, BUSY, READONLY, NOPERM), is adaptertest.CheckOutages.

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/memdriver"
)

// faultConn is a memdriver connection whose calls fail as fault says:
// fault gets the call's number (1 for the first, counted over SetNX and
// Watch together) and returns the error to fail it with, or nil to run it.
// With written, the call runs and then fails (a lost reply).
type faultConn struct {
	*memdriver.Conn
	mu      sync.Mutex
	n       int
	fault   func(n int) error
	written bool
}

func (c *faultConn) next() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if c.fault == nil {
		return nil
	}
	return c.fault(c.n)
}

func (c *faultConn) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	err := c.next()
	if err != nil && !c.written {
		return false, err
	}
	ok, serr := c.Conn.SetNX(ctx, key, value, ttl)
	if err != nil {
		return false, err
	}
	return ok, serr
}

func (c *faultConn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	if err := c.next(); err != nil {
		return err
	}
	return c.Conn.Watch(ctx, keys, fn)
}

func (c *faultConn) setFault(f func(n int) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n, c.fault = 0, f
}

// tries records the Tries of the last EventNotObtained or EventObtained.
type tries struct {
	mu sync.Mutex
	n  int
}

func (r *tries) Observe(e relock.Event) {
	if e.Kind == relock.EventObtained || e.Kind == relock.EventNotObtained {
		r.mu.Lock()
		r.n = e.Tries
		r.mu.Unlock()
	}
}

func (r *tries) get() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

var (
	errLoading     = driver.ServerError("LOADING Redis is loading the dataset in memory")
	errOOM         = driver.ServerError("OOM command not allowed when used memory > 'maxmemory'.")
	errNoPerm      = driver.ServerError("NOPERM this user has no permissions to access one of the keys used as arguments")
	errConnRefused = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
)

func isUnavailable(err error) bool {
	return errors.Is(err, relock.ErrUnavailable) && !errors.Is(err, relock.ErrNotObtained)
}

func isTaken(err error) bool {
	return errors.Is(err, relock.ErrNotObtained) && !errors.Is(err, relock.ErrUnavailable)
}

// A try that gets no answer, or a refusal for now, is retried: Obtain
// gets the lock once Redis answers again.
func TestObtainRetriesAnOutage(t *testing.T) {
	for name, fail := range map[string]error{"refused": errConnRefused, "LOADING": errLoading, "EOF": io.EOF} {
		t.Run(name, func(t *testing.T) {
			conn := &faultConn{Conn: memdriver.New().Conn()}
			conn.setFault(func(n int) error {
				if n <= 3 {
					return fail
				}
				return nil
			})
			var r tries
			c := newClient(t, conn, relock.WithObserver(&r))
			l, err := c.Obtain(ctxT(t, 10*time.Second), "k", time.Second)
			if err != nil {
				t.Fatalf("Obtain after 3 failed tries = %v, want the lock", err)
			}
			if r.get() != 4 {
				t.Errorf("Obtain took %d tries, want 4", r.get())
			}
			if err := l.Release(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A try whose reply was lost wrote our token; the next try finds the key
// ours and returns the lock, and no clean-up of the lost try takes it
// away afterwards (Close waits for every clean-up).
func TestObtainAfterALostReplyKeepsTheLock(t *testing.T) {
	store := memdriver.New()
	conn := &faultConn{Conn: store.Conn(), written: true}
	conn.setFault(func(n int) error {
		if n == 1 {
			return io.ErrUnexpectedEOF
		}
		return nil
	})
	c, err := relock.New(conn)
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.Obtain(ctxT(t, 10*time.Second), "k", 10*time.Second)
	if err != nil {
		t.Fatalf("Obtain = %v, want the lock", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if v, ok := memGet(t, store, "k"); !ok || v != l.Token() {
		t.Fatalf("after Close the key holds %q (%v), want our token %q: a clean-up undid the win", v, ok, l.Token())
	}
}

// With NoRetry one failed try is enough: ErrUnavailable at once, with the
// refusal, and without any context error.
func TestTryObtainUnavailableAtOnce(t *testing.T) {
	for name, fail := range map[string]error{"refused": errConnRefused, "OOM": errOOM} {
		t.Run(name, func(t *testing.T) {
			conn := &faultConn{Conn: memdriver.New().Conn()}
			conn.setFault(func(int) error { return fail })
			c := newClient(t, conn)
			_, err := c.TryObtain(context.Background(), "k", time.Second)
			if !isUnavailable(err) || !errors.Is(err, fail) || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("TryObtain = %v, want ErrUnavailable with %v, not ErrNotObtained nor a context error", err, fail)
			}
		})
	}
}

// The retry strategy bounds the retries of an outage as it bounds those of
// a taken lock; then Obtain says ErrUnavailable, and how many tries.
func TestObtainOutageEndsWithTheStrategy(t *testing.T) {
	conn := &faultConn{Conn: memdriver.New().Conn()}
	conn.setFault(func(int) error { return errLoading })
	var r tries
	c := newClient(t, conn, relock.WithObserver(&r))
	_, err := c.Obtain(context.Background(), "k", time.Second, relock.WithRetry(relock.LimitRetry(relock.FixedRetry(time.Millisecond), 2)))
	if !isUnavailable(err) || !errors.Is(err, driver.ErrServerRefused) || !strings.Contains(err.Error(), "tries: 3") {
		t.Fatalf("Obtain = %v, want ErrUnavailable after 3 tries, with the refusal", err)
	}
	if r.get() != 3 {
		t.Errorf("Tries = %d, want 3", r.get())
	}
	// The budget too.
	_, err = c.Obtain(context.Background(), "k", time.Second, relock.WithMaxWait(50*time.Millisecond))
	if !isUnavailable(err) || !errors.Is(err, errLoading) {
		t.Fatalf("Obtain with WithMaxWait = %v, want ErrUnavailable with the refusal", err)
	}
}

// A holder seen once makes the answer "taken", even when the later tries
// fail: the strategy, the budget or the context then ends the call with
// ErrNotObtained, and the failures are told in the text.
func TestObtainHolderSeenThenOutageIsTaken(t *testing.T) {
	store := memdriver.New()
	if _, err := store.Conn().SetNX(context.Background(), "k", "someone else", time.Minute); err != nil {
		t.Fatal(err)
	}
	conn := &faultConn{Conn: store.Conn()}
	// The first try's SetNX and Get answer: taken. Then only refusals.
	fault := func(n int) error {
		if n == 1 {
			return nil
		}
		return errLoading
	}
	c := newClient(t, conn)
	for name, opts := range map[string][]relock.Option{
		"strategy": {relock.WithRetry(relock.LimitRetry(relock.FixedRetry(time.Millisecond), 3))},
		"budget":   {relock.WithMaxWait(50 * time.Millisecond)},
		"context":  nil,
	} {
		t.Run(name, func(t *testing.T) {
			conn.setFault(fault)
			ctx := context.Background()
			if opts == nil {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
				defer cancel()
			}
			_, err := c.Obtain(ctx, "k", time.Second, opts...)
			if !isTaken(err) || !strings.Contains(err.Error(), "LOADING") {
				t.Fatalf("Obtain = %v, want ErrNotObtained, not ErrUnavailable, mentioning LOADING", err)
			}
			if opts == nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Obtain = %v, want context.DeadlineExceeded too", err)
			}
		})
	}
}

// Permanent refusals end Obtain at once, whatever the strategy and
// context: NOPERM, an unknown command, and an error reply relock does not
// know (returned as the driver reported it, matching no sentinel).
func TestObtainPermanentFailureAtOnce(t *testing.T) {
	unknown := driver.ServerError("ERR something relock does not know")
	for _, tc := range []struct {
		name string
		fail error
		want error
	}{
		{"NOPERM", errNoPerm, relock.ErrNoPermission},
		{"unknown command", driver.ServerError("ERR unknown command 'SET', with args beginning with: "), relock.ErrUnsupported},
		{"unknown reply", unknown, unknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := &faultConn{Conn: memdriver.New().Conn()}
			conn.setFault(func(int) error { return tc.fail })
			var r tries
			c := newClient(t, conn, relock.WithObserver(&r))
			_, err := c.Obtain(context.Background(), "k", time.Second)
			if !errors.Is(err, tc.want) || errors.Is(err, relock.ErrUnavailable) || errors.Is(err, relock.ErrNotObtained) {
				t.Fatalf("Obtain = %v, want %v only", err, tc.want)
			}
			if r.get() != 1 {
				t.Errorf("Tries = %d, want 1", r.get())
			}
		})
	}
}

// Release, Refresh, TTL, Inspect and Attach classify a driver's error as
// Obtain does.
func TestLockCallsClassifyErrors(t *testing.T) {
	conn := &faultConn{Conn: memdriver.New().Conn()}
	c := newClient(t, conn)
	ctx := ctxT(t, 10*time.Second)
	l, err := c.Obtain(ctx, "k", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		fail, want error
	}{
		{errLoading, relock.ErrUnavailable},
		{errConnRefused, relock.ErrUnavailable},
		{errNoPerm, relock.ErrNoPermission},
	} {
		conn.setFault(func(int) error { return tc.fail })
		calls := map[string]error{
			"Release": l.Release(ctx),
			"Refresh": l.Refresh(ctx, 10*time.Second),
		}
		_, calls["TTL"] = l.TTL(ctx)
		_, calls["Inspect"] = c.Inspect(ctx, "k")
		_, calls["Attach"] = c.Attach(ctx, "k", l.Token())
		for what, err := range calls {
			if !errors.Is(err, tc.want) || !errors.Is(err, tc.fail) {
				t.Errorf("%s failing with %v = %v, want %v", what, tc.fail, err, tc.want)
			}
		}
	}
	conn.setFault(nil)
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
}
