package rueidisadapter_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/rueidis"

	rueidisadapter "github.com/relock-go/relock/adapters/rueidis"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// deadlineRuns is how many times CheckDeadlines runs each call: enough for
// a distribution, fewer in -short mode.
func deadlineRuns() int {
	if testing.Short() {
		return 5
	}
	return 20
}

// checkConnDeadlines runs the shared deadline checks on c and closes it.
func checkConnDeadlines(t *testing.T, c driver.Conn) {
	t.Helper()
	calls, closeSubs := adaptertest.DriverCalls(t, c, "relock-rueidis-test:deadline", adaptertest.CallLimit)
	adaptertest.CheckDeadlines(t, adaptertest.CallDeadline, adaptertest.CallLimit, deadlineRuns(), calls...)
	closeSubs()
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	d := time.Since(start)
	if d > closeLimit {
		t.Errorf("Close took %v, above %v", d, closeLimit)
	}
	t.Logf("Close took %v", d.Round(time.Millisecond))
}

// closeLimit bounds Conn.Close after the deadline checks: it waits for the
// Dedicate calls left running, which rueidis ends within its Dialer.Timeout
// (5 s by default) against a server that does not answer.
const closeLimit = 5*time.Second + adaptertest.CallLimit

// TestDeadlineSilentServer checks that every call returns soon after its
// context's deadline against a server that accepts connections and never
// answers. rueidis.NewClient itself fails against it (it waits for the
// HELLO reply), so only a Conn made by Open, which makes its client on
// first use, is checked here.
func TestDeadlineSilentServer(t *testing.T) {
	addr := adaptertest.SilentServer(t)
	c, err := rueidisadapter.Driver{}.Open("redis://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	checkConnDeadlines(t, c)
}

// TestDeadlineStoppedServer checks the same against a redis-server stopped
// with SIGSTOP, through clients made while it ran.
func TestDeadlineStoppedServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a redis-server: skipped in -short mode")
	}
	srv := testredis.Start(t)
	run := func(t *testing.T, c driver.Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for range 4 {
			if _, _, err := c.Get(ctx, "relock-rueidis-test:deadline"); err != nil {
				t.Fatalf("Get before the server stopped: %v", err)
			}
		}
		thaw := adaptertest.Freeze(t, srv)
		checkConnDeadlines(t, c)
		thaw()
	}
	t.Run("default options", func(t *testing.T) {
		cl, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		run(t, rueidisadapter.New(cl))
	})
	t.Run("Open", func(t *testing.T) {
		c, err := rueidisadapter.Driver{}.Open(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		run(t, c)
	})
}

// TestClientDeadlineStoppedServer checks relock's own calls (Obtain,
// TryObtain, Release, Refresh, TTL) over this adapter against a SIGSTOPped
// server.
func TestClientDeadlineStoppedServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a redis-server: skipped in -short mode")
	}
	srv := testredis.Start(t)
	t.Run("user client", func(t *testing.T) {
		adaptertest.CheckClientDeadlines(t, srv, func() driver.Conn {
			cl, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cl.Close)
			return rueidisadapter.New(cl)
		}(), 10)
	})
	t.Run("Open", func(t *testing.T) {
		c, err := rueidisadapter.Driver{}.Open(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		adaptertest.CheckClientDeadlines(t, srv, c, 10)
	})
}
