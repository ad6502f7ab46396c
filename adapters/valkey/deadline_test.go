package valkeyadapter_test

import (
	"context"
	"testing"
	"time"

	valkeyadapter "github.com/relock-go/relock/adapters/valkey"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// closeLimit bounds Conn.Close after the deadline checks: it waits for
// the Dedicate and NewClient calls left running, which valkey ends within
// its Dialer.Timeout (5 s) against a server that does not answer.
const closeLimit = 5*time.Second + adaptertest.CallLimit

// checkConnDeadlines runs the shared deadline checks on c and closes it.
func checkConnDeadlines(t *testing.T, c driver.Conn) {
	t.Helper()
	n := 20
	if testing.Short() {
		n = 5
	}
	calls, closeSubs := adaptertest.DriverCalls(t, c, "relock-valkey-test:deadline", adaptertest.CallLimit)
	adaptertest.CheckDeadlines(t, adaptertest.CallDeadline, adaptertest.CallLimit, n, calls...)
	closeSubs()
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > closeLimit {
		t.Errorf("Close took %v, above %v", d, closeLimit)
	}
}

// TestDeadlineSilentServer: every call returns soon after its context's
// deadline against a server that accepts connections and never answers.
// valkey.NewClient itself fails against it (no HELLO reply), so only a
// Conn from Open, which makes its client on first use, is checked.
func TestDeadlineSilentServer(t *testing.T) {
	c, err := valkeyadapter.Driver{}.Open("redis://" + adaptertest.SilentServer(t))
	if err != nil {
		t.Fatal(err)
	}
	checkConnDeadlines(t, c)
}

// TestDeadlineStoppedServer checks the same against a redis-server stopped
// with SIGSTOP, through clients made while it ran, and relock's own calls.
func TestDeadlineStoppedServer(t *testing.T) {
	testredis.SkipShort(t, "starts and stops a redis-server")
	srv := testredis.Start(t)
	run := func(t *testing.T, c driver.Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for range 4 {
			if _, _, err := c.Get(ctx, "relock-valkey-test:deadline"); err != nil {
				t.Fatalf("Get before the server stopped: %v", err)
			}
		}
		thaw := adaptertest.Freeze(t, srv)
		checkConnDeadlines(t, c)
		thaw()
	}
	open := func(t *testing.T) driver.Conn {
		c, err := valkeyadapter.Driver{}.Open(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	t.Run("user client", func(t *testing.T) { run(t, valkeyadapter.New(newClient(t, srv.Addr(), nil))) })
	t.Run("Open", func(t *testing.T) { run(t, open(t)) })
	t.Run("relock calls", func(t *testing.T) { adaptertest.CheckClientDeadlines(t, srv, open(t), 10) })
}
