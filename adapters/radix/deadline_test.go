package radixadapter_test

import (
	"context"
	"testing"
	"time"

	"github.com/mediocregopher/radix/v4"

	radixadapter "github.com/relock-go/relock/adapters/radix"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// deadlineRuns is how many times CheckDeadlines runs each call.
func deadlineRuns() int {
	if testing.Short() {
		return 5
	}
	return 20
}

// checkConnDeadlines runs the shared deadline checks on c and closes it.
func checkConnDeadlines(t *testing.T, c driver.Conn) {
	t.Helper()
	calls, closeSubs := adaptertest.DriverCalls(t, c, "relock-radix-test:deadline", adaptertest.CallLimit)
	adaptertest.CheckDeadlines(t, adaptertest.CallDeadline, adaptertest.CallLimit, deadlineRuns(), calls...)
	closeSubs()
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > adaptertest.CallLimit {
		t.Errorf("Close took %v", d)
	}
}

// quietPool is a pool without radix's periodic PING, which radix runs
// unguarded and which can stall the pool against a server that stops
// answering (see the package doc).
func quietPool(t *testing.T, addr string) radix.Client {
	return newPoolConfig(t, addr, radix.PoolConfig{PingInterval: -1, Size: 8})
}

// TestDeadlineSilentServer checks that every call returns soon after its
// context's deadline against a server that accepts connections and never
// answers.
func TestDeadlineSilentServer(t *testing.T) {
	addr := adaptertest.SilentServer(t)
	t.Run("pool", func(t *testing.T) { checkConnDeadlines(t, radixadapter.New(quietPool(t, addr))) })
	t.Run("pool with PING", func(t *testing.T) {
		// Known failure, radix's: the pool's PING (2 s timeout) on a
		// silent server leaves its connection reading the late PONG with
		// no deadline; the next PING on that connection then waits for
		// good, holding the pool's read lock, and every call that takes a
		// connection (radix's getConn takes the write lock, without a
		// context) waits behind it, as does the pool's Close. Seen here
		// as a 10 min test time-out. Hence PingInterval: -1 (quietPool,
		// and Open's pools).
		t.Skip("known radix v4.1.4 limitation: a pool that PINGs a silent server deadlocks (see the comment)")
		checkConnDeadlines(t, radixadapter.New(newPool(t, addr)))
	})
	t.Run("Open", func(t *testing.T) {
		c, err := radixadapter.Driver{}.Open("redis://" + addr)
		if err != nil {
			t.Fatal(err)
		}
		checkConnDeadlines(t, c)
	})
	t.Run("Open with a password", func(t *testing.T) {
		c, err := radixadapter.Driver{}.Open("redis://:pw@" + addr)
		if err != nil {
			t.Fatal(err)
		}
		checkConnDeadlines(t, c)
	})
}

// TestDeadlineStoppedServer checks the same against a redis-server stopped
// with SIGSTOP, through pools holding connections made while it ran.
func TestDeadlineStoppedServer(t *testing.T) {
	testredis.SkipShort(t, "starts a redis-server")
	srv := testredis.Start(t)
	run := func(t *testing.T, c driver.Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for range 4 {
			if _, _, err := c.Get(ctx, "relock-radix-test:deadline"); err != nil {
				t.Fatalf("Get before the server stopped: %v", err)
			}
		}
		thaw := adaptertest.Freeze(t, srv)
		checkConnDeadlines(t, c)
		thaw()
	}
	t.Run("pool", func(t *testing.T) { run(t, radixadapter.New(quietPool(t, srv.Addr()))) })
	t.Run("Open", func(t *testing.T) {
		c, err := radixadapter.Driver{}.Open(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		run(t, c)
	})
}

// TestClientDeadlineStoppedServer checks relock's own calls over this
// adapter against a SIGSTOPped server.
func TestClientDeadlineStoppedServer(t *testing.T) {
	testredis.SkipShort(t, "starts a redis-server")
	srv := testredis.Start(t)
	t.Run("pool", func(t *testing.T) {
		adaptertest.CheckClientDeadlines(t, srv, radixadapter.New(quietPool(t, srv.Addr())), 10)
	})
	t.Run("Open", func(t *testing.T) {
		c, err := radixadapter.Driver{}.Open(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		adaptertest.CheckClientDeadlines(t, srv, c, 10)
	})
}
