package conformance_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relock-go/relock/conformance"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/memdriver"
)

// The suite must be able to fail. Each broken driver below has one
// plausible bug; TestSuiteCatchesBrokenDrivers runs the suite against it in
// a child process and checks that the subtests named for that bug fail.

const brokenEnv = "RELOCK_CONFORMANCE_BROKEN_DRIVER"

var brokenDrivers = map[string]struct {
	wrap     func(*memdriver.Conn) driver.Conn
	mustFail []string
}{
	"IgnoresTTL": {
		wrap: func(c *memdriver.Conn) driver.Conn { return &ignoresTTL{broken{c}} },
		mustFail: []string{
			"Driver/SetNXExpires",
			"Obtain/Takeover/Watch",
			"Release/AfterExpiry/Watch",
		},
	},
	"StaleGetInTx": {
		wrap: func(c *memdriver.Conn) driver.Conn { return &staleGet{broken: broken{c}, seen: map[string]string{}} },
		mustFail: []string{
			"Release/ByNonOwner/Watch",
			"Refresh/ByNonOwner/Watch",
		},
	},
	"HidesWrongType": {
		wrap: func(c *memdriver.Conn) driver.Conn { return &hidesWrongType{broken{c}} },
		mustFail: []string{
			"Driver/WrongType",
			"WrongType/Watch",
		},
	},
	"IntReplies": {
		wrap: func(c *memdriver.Conn) driver.Conn { return &intReplies{broken{c}} },
		mustFail: []string{
			"Driver/Watcher/Exec",
			"Release/ByOwner/Watch",
			"TTL/ByOwner/Watch",
		},
	},
	"IgnoresAbort": {
		wrap: func(c *memdriver.Conn) driver.Conn { return &ignoresAbort{broken{c}} },
		mustFail: []string{
			"Driver/Watcher/Aborted",
		},
	},
}

// TestBrokenDriver runs the suite against the broken driver named by
// $RELOCK_CONFORMANCE_BROKEN_DRIVER; it is meant to fail, and only runs as
// the child process of TestSuiteCatchesBrokenDrivers.
func TestBrokenDriver(t *testing.T) {
	name := os.Getenv(brokenEnv)
	if name == "" {
		t.Skip("runs only as a child of TestSuiteCatchesBrokenDrivers")
	}
	bd, ok := brokenDrivers[name]
	if !ok {
		t.Fatalf("unknown broken driver %q", name)
	}
	store := memdriver.New()
	conformance.Run(t, conformance.Harness{
		NewConn:      func(*testing.T) driver.Conn { return bd.wrap(store.Conn()) },
		Advance:      func(_ *testing.T, d time.Duration) { store.Advance(d) },
		SetWrongType: func(_ *testing.T, key string) { store.SetHash(key) },
	})
}

func TestSuiteCatchesBrokenDrivers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite in child processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for name, bd := range brokenDrivers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(exe, "-test.run=^TestBrokenDriver$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), brokenEnv+"="+name)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a driver that %s:\n%s", name, out)
			}
			for _, sub := range bd.mustFail {
				if !strings.Contains(string(out), "--- FAIL: TestBrokenDriver/"+sub+" ") {
					t.Errorf("subtest %s did not fail for a driver that %s", sub, name)
				}
			}
			if t.Failed() {
				t.Logf("child output:\n%s", out)
			}
		})
	}
}

// broken passes everything to a working in-memory driver.
type broken struct{ c *memdriver.Conn }

func (b broken) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	return b.c.SetNX(ctx, key, value, ttl)
}
func (b broken) Get(ctx context.Context, key string) (string, bool, error) { return b.c.Get(ctx, key) }
func (b broken) Close() error                                              { return b.c.Close() }
func (b broken) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return b.c.Watch(ctx, keys, fn)
}

// ignoresTTL sets keys without expiry.
type ignoresTTL struct{ broken }

func (b *ignoresTTL) SetNX(ctx context.Context, key, value string, _ time.Duration) (bool, error) {
	return b.c.SetNX(ctx, key, value, 365*24*time.Hour)
}

// staleGet answers GET inside a transaction from what this connection
// wrote before: a client-side cache gone wrong, so the owner check is void.
type staleGet struct {
	broken
	mu   sync.Mutex
	seen map[string]string
}

func (b *staleGet) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	ok, err := b.c.SetNX(ctx, key, value, ttl)
	if ok {
		b.mu.Lock()
		b.seen[key] = value
		b.mu.Unlock()
	}
	return ok, err
}

func (b *staleGet) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return b.c.Watch(ctx, keys, func(tx driver.Tx) error { return fn(staleTx{tx, b}) })
}

type staleTx struct {
	driver.Tx
	b *staleGet
}

func (t staleTx) Get(ctx context.Context, key string) (string, bool, error) {
	t.b.mu.Lock()
	v, ok := t.b.seen[key]
	t.b.mu.Unlock()
	if ok {
		return v, true, nil
	}
	return t.Tx.Get(ctx, key)
}

// hidesWrongType reports a key of another type as missing.
type hidesWrongType struct{ broken }

func (b *hidesWrongType) Get(ctx context.Context, key string) (string, bool, error) {
	v, ok, err := b.c.Get(ctx, key)
	if errors.Is(err, driver.ErrWrongType) {
		return "", false, nil
	}
	return v, ok, err
}

// intReplies maps integer replies to int, not int64.
type intReplies struct{ broken }

func (b *intReplies) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return b.c.Watch(ctx, keys, func(tx driver.Tx) error { return fn(intTx{tx}) })
}

type intTx struct{ driver.Tx }

func (t intTx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	r, err := t.Tx.Exec(ctx, cmds...)
	for i, v := range r {
		if n, ok := v.(int64); ok {
			r[i] = int(n)
		}
	}
	return r, err
}

// ignoresAbort reports an aborted transaction as a success.
type ignoresAbort struct{ broken }

func (b *ignoresAbort) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return b.c.Watch(ctx, keys, func(tx driver.Tx) error { return fn(abortTx{tx}) })
}

type abortTx struct{ driver.Tx }

func (t abortTx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	r, err := t.Tx.Exec(ctx, cmds...)
	if errors.Is(err, driver.ErrTxAborted) {
		r = make([]any, len(cmds))
		for i := range r {
			r[i] = "OK"
		}
		return r, nil
	}
	return r, err
}
