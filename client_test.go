package relock_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/memdriver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// plainConn implements only driver.Conn: no owner-checked release is
// possible over it.
type plainConn struct{ closed atomic.Int32 }

func (*plainConn) SetNX(context.Context, string, string, time.Duration) (bool, error) {
	return false, errors.New("plainConn: not used")
}
func (*plainConn) Get(context.Context, string) (string, bool, error) {
	return "", false, errors.New("plainConn: not used")
}
func (c *plainConn) Close() error { c.closed.Add(1); return nil }

func TestNew(t *testing.T) {
	if _, err := relock.New(nil); !errors.Is(err, relock.ErrInvalidArgument) {
		t.Errorf("New(nil) = %v, want ErrInvalidArgument", err)
	}
	if _, err := relock.New(&plainConn{}); !errors.Is(err, relock.ErrUnsupported) {
		t.Errorf("New(a Conn with neither Scripter nor Watcher) = %v, want ErrUnsupported", err)
	}
	if _, err := relock.New(memdriver.New().Conn(), relock.WithMaxWait(-time.Second)); !errors.Is(err, relock.ErrInvalidArgument) {
		t.Errorf("New with a negative wait budget = %v, want ErrInvalidArgument", err)
	}
	c, err := relock.New(memdriver.New().Conn(), nil, relock.WithRetry(nil))
	if err != nil {
		t.Fatalf("New with nil options: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

type fakeDriver struct {
	conn driver.Conn
	err  error
	dsn  string
}

func (d *fakeDriver) Open(dsn string) (driver.Conn, error) {
	d.dsn = dsn
	return d.conn, d.err
}

// registryRuns makes the registered names unique per run, so the test
// passes under -count.
var registryRuns atomic.Int32

func TestRegistry(t *testing.T) {
	run := registryRuns.Add(1)
	name := func(s string) string { return fmt.Sprintf("test-%s-%d", s, run) }
	store := memdriver.New()
	good := &fakeDriver{conn: store.Conn()}
	relock.Register(name("good"), good)
	relock.Register(name("failing"), &fakeDriver{err: errors.New("dial refused")})
	plain := &plainConn{}
	relock.Register(name("plain"), &fakeDriver{conn: plain})

	names := relock.Drivers()
	if !slices.IsSorted(names) || !slices.Contains(names, name("good")) || !slices.Contains(names, name("plain")) {
		t.Fatalf("Drivers() = %q, want it sorted and listing the test drivers", names)
	}

	c, err := relock.Open(name("good"), "redis://example:6379/0")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if good.dsn != "redis://example:6379/0" {
		t.Errorf("the driver got DSN %q", good.dsn)
	}
	l, err := c.Obtain(context.Background(), "k", time.Second)
	if err != nil {
		t.Fatalf("Obtain through an opened client: %v", err)
	}
	if err := l.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := relock.Open("no-such-driver", "redis://x"); !errors.Is(err, relock.ErrInvalidArgument) || !strings.Contains(err.Error(), "no-such-driver") {
		t.Errorf("Open of an unknown driver = %v, want ErrInvalidArgument naming it", err)
	}
	if _, err := relock.Open(name("failing"), "redis://x"); err == nil || !strings.Contains(err.Error(), "dial refused") {
		t.Errorf("Open of a failing driver = %v, want its error", err)
	}
	if _, err := relock.Open(name("plain"), "redis://x"); !errors.Is(err, relock.ErrUnsupported) {
		t.Errorf("Open of a driver without Scripter or Watcher = %v, want ErrUnsupported", err)
	}
	if plain.closed.Load() != 1 {
		t.Errorf("Open closed the rejected connection %d times, want once", plain.closed.Load())
	}

	mustPanic(t, "Register of a taken name", func() { relock.Register(name("good"), good) })
	mustPanic(t, "Register of a nil driver", func() { relock.Register(name("nil"), nil) })
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}

// abortingConn aborts the first n transactions.
type abortingConn struct {
	*memdriver.Conn
	left atomic.Int32
}

func (c *abortingConn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return c.Conn.Watch(ctx, keys, func(tx driver.Tx) error { return fn(abortingTx{tx, c}) })
}

type abortingTx struct {
	driver.Tx
	c *abortingConn
}

func (t abortingTx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	if t.c.left.Add(-1) >= 0 {
		return nil, driver.ErrTxAborted
	}
	return t.Tx.Exec(ctx, cmds...)
}

func TestWatchPathRetriesAbortedExec(t *testing.T) {
	conn := &abortingConn{Conn: memdriver.New().Conn()}
	c, err := relock.New(conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := c.TryObtain(ctx, "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	conn.left.Store(3)
	if err := l.Refresh(ctx, time.Hour); err != nil {
		t.Fatalf("Refresh after 3 aborted EXECs: %v", err)
	}
	conn.left.Store(1 << 20)
	if err := l.Release(ctx); err == nil || errors.Is(err, relock.ErrNotHeld) {
		t.Fatalf("Release with every EXEC aborted = %v, want an error that is not ErrNotHeld", err)
	}
	conn.left.Store(0)
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release once EXEC works again: %v", err)
	}
}

// scriptConn fakes a scripting driver with scripted replies.
type scriptConn struct {
	plainConn
	replies []any // one per EvalSha; an error value is returned as the error
	evals   atomic.Int32
	shas    atomic.Int32
}

func (c *scriptConn) EvalSha(context.Context, string, []string, ...string) (any, error) {
	i := int(c.shas.Add(1)) - 1
	if i >= len(c.replies) {
		return nil, errors.New("scriptConn: out of replies")
	}
	if err, ok := c.replies[i].(error); ok {
		return nil, err
	}
	return c.replies[i], nil
}

// SetNX finds the key taken, so that every try runs the scripts.
func (*scriptConn) SetNX(context.Context, string, string, time.Duration) (bool, error) {
	return false, nil
}

func (c *scriptConn) Eval(context.Context, string, []string, ...string) (any, error) {
	c.evals.Add(1)
	return []any{int64(1), int64(1000), int64(0), int64(0), int64(0)}, nil
}

func TestWaitNeverOutlastsHolderTTL(t *testing.T) {
	// The holder's key has 5 ms left; even with an hour-long retry, the
	// next try comes once it has expired.
	conn := &scriptConn{replies: []any{
		[]any{int64(0), int64(5), int64(0), int64(0), int64(0)},
		[]any{int64(1), int64(1000), int64(0), int64(0), int64(0)},
	}}
	c, err := relock.New(conn, relock.WithRetry(relock.FixedRetry(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Obtain(ctx, "k", time.Second); err != nil {
		t.Fatalf("Obtain: %v (it waited past the holder's TTL)", err)
	}
}

func TestScriptPathFallsBackToEval(t *testing.T) {
	conn := &scriptConn{replies: []any{driver.ErrNoScript}}
	c, err := relock.New(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.TryObtain(context.Background(), "k", time.Second); err != nil {
		t.Fatalf("TryObtain after NOSCRIPT: %v", err)
	}
	if conn.evals.Load() != 1 {
		t.Fatalf("NOSCRIPT led to %d EVALs, want 1", conn.evals.Load())
	}
}

func TestBadReplyIsAnError(t *testing.T) {
	for _, reply := range []any{
		[]any{1, 1000, 0, 0, 0},                                    // int, not int64
		[]any{int64(1), int64(1000)},                               // too short
		[]any{int64(9), int64(1000), int64(0), int64(0), int64(0)}, // no such status
		"OK", // not an array
		[]any{[]byte("1"), nil, int64(0), int64(0), int64(0)},           // bytes, not int64
		[]any{int64(1), int64(1000), int64(0), int64(0), int64(0), nil}, // too long
	} {
		c, err := relock.New(&scriptConn{replies: []any{reply, int64(0)}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.TryObtain(context.Background(), "k", time.Second)
		if err == nil || errors.Is(err, relock.ErrNotObtained) {
			t.Errorf("obtain reply %#v gave %v, want an error about the reply", reply, err)
		}
	}
}

func TestWrongTypeWrapsBoth(t *testing.T) {
	store := memdriver.New()
	store.SetHash("h")
	c, err := relock.New(store.Conn())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Obtain(context.Background(), "h", time.Second)
	if !errors.Is(err, relock.ErrWrongType) || !errors.Is(err, driver.ErrWrongType) {
		t.Fatalf("Obtain on a hash = %v, want ErrWrongType and driver.ErrWrongType", err)
	}
	if !strings.HasPrefix(err.Error(), "relock: ") {
		t.Errorf("error %q lacks the package prefix", err)
	}
}
