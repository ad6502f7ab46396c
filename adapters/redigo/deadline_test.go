package redigo_test

import (
	"context"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/relock-go/relock/adapters/redigo"
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
	calls, closeSubs := adaptertest.DriverCalls(t, c, "relock-redigo-test:deadline", adaptertest.CallLimit)
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

// userPool is a pool as users write it: a dial function, MaxIdle, and no
// timeout at all, so that only the context bounds a call.
func userPool(addr string) *redis.Pool {
	return &redis.Pool{
		MaxIdle: 8,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", addr)
		},
	}
}

// TestDeadlineSilentServer checks that every call returns soon after its
// context's deadline against a server that accepts connections and never
// answers, on a pool without any timeout of its own.
func TestDeadlineSilentServer(t *testing.T) {
	addr := adaptertest.SilentServer(t)
	t.Run("pool without timeouts", func(t *testing.T) {
		pool := userPool(addr)
		defer pool.Close()
		checkConnDeadlines(t, redigo.New(pool))
	})
	t.Run("Open", func(t *testing.T) {
		c, err := redigo.Driver{}.Open("redis://" + addr)
		if err != nil {
			t.Fatal(err)
		}
		checkConnDeadlines(t, c)
	})
}

// TestDeadlineStoppedServer checks the same against a redis-server stopped
// with SIGSTOP, through pools holding idle connections made while it ran.
func TestDeadlineStoppedServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a redis-server: skipped in -short mode")
	}
	srv := testredis.Start(t)
	run := func(t *testing.T, c driver.Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for range 4 {
			if _, _, err := c.Get(ctx, "relock-redigo-test:deadline"); err != nil {
				t.Fatalf("Get before the server stopped: %v", err)
			}
		}
		thaw := adaptertest.Freeze(t, srv)
		checkConnDeadlines(t, c)
		thaw()
	}
	t.Run("pool without timeouts", func(t *testing.T) {
		pool := userPool(srv.Addr())
		defer pool.Close()
		run(t, redigo.New(pool))
	})
	t.Run("Open", func(t *testing.T) {
		c, err := redigo.Driver{}.Open(srv.URL())
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
			p := userPool(srv.Addr())
			t.Cleanup(func() { _ = p.Close() })
			return redigo.New(p)
		}(), 10)
	})
	t.Run("Open", func(t *testing.T) {
		c, err := redigo.Driver{}.Open(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		adaptertest.CheckClientDeadlines(t, srv, c, 10)
	})
}
