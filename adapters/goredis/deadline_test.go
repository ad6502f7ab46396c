package goredis_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relock-go/relock/adapters/goredis"
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
// Closing the subscriptions opened must take no longer than closeLimit (0:
// no limit); beforeClose, if not nil, runs just before.
func checkConnDeadlines(t *testing.T, c driver.Conn, closeLimit time.Duration, beforeClose func()) {
	t.Helper()
	calls, closeSubs := adaptertest.DriverCalls(t, c, "relock-goredis-test:deadline", closeLimit)
	adaptertest.CheckDeadlines(t, adaptertest.CallDeadline, adaptertest.CallLimit, deadlineRuns(), calls...)
	if beforeClose != nil {
		beforeClose()
	}
	closeSubs()
	closeWithin(t, c, 15*time.Second)
}

// Limits on closing the subscriptions after the deadline checks: a client
// with ContextTimeoutEnabled gives up a reconnection at once; one without
// holds it for its DialTimeout (5 s by default).
const (
	closeLimitCTE     = adaptertest.CallLimit
	closeLimitDefault = 5*time.Second + adaptertest.CallLimit
)

// skipShortVariant skips, in -short mode, the variants of a deadline test
// beyond a client with default options and one made by Open.
func skipShortVariant(t *testing.T) {
	if testing.Short() {
		t.Skip("one more client configuration: skipped in -short mode")
	}
}

// noSubscriber hides the driver.Subscriber side of a Conn.
type noSubscriber struct {
	*goredis.Conn
	Subscribe struct{} // shadows Conn.Subscribe
}

// closeWithin closes c and fails t when that takes longer than limit.
func closeWithin(t *testing.T, c driver.Conn, limit time.Duration) {
	t.Helper()
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	d := time.Since(start)
	if d > limit {
		t.Errorf("Close took %v, above %v", d, limit)
	}
	t.Logf("Close took %v", d.Round(time.Millisecond))
}

// TestDeadlineSilentServer checks that every call returns soon after its
// context's deadline against a server that accepts connections and never
// answers, whatever the client's timeout settings.
func TestDeadlineSilentServer(t *testing.T) {
	addr := adaptertest.SilentServer(t)
	t.Run("default options", func(t *testing.T) {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		defer rdb.Close()
		checkConnDeadlines(t, goredis.New(rdb), closeLimitDefault, nil)
	})
	t.Run("ContextTimeoutEnabled", func(t *testing.T) {
		skipShortVariant(t)
		rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		defer rdb.Close()
		checkConnDeadlines(t, goredis.New(rdb), closeLimitCTE, nil)
	})
	t.Run("long timeouts", func(t *testing.T) {
		skipShortVariant(t)
		// The calls left running would wait for a minute: closing the
		// client ends them. A subscription's connection being set up
		// is not ended by that, and holds the subscription's Close for
		// the ReadTimeout (a minute here): the subscription calls are
		// left out (they are checked with the default options above).
		rdb := redis.NewClient(&redis.Options{Addr: addr, ReadTimeout: time.Minute, WriteTimeout: time.Minute, MaxRetries: 5})
		checkConnDeadlines(t, noSubscriber{Conn: goredis.New(rdb)}, 0, func() { _ = rdb.Close() })
	})
	t.Run("cluster client", func(t *testing.T) {
		skipShortVariant(t)
		rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}})
		defer rdb.Close()
		checkConnDeadlines(t, goredis.New(rdb), closeLimitDefault, nil)
	})
	t.Run("Open", func(t *testing.T) {
		c, err := goredis.Driver{}.Open("redis://" + addr)
		if err != nil {
			t.Fatal(err)
		}
		checkConnDeadlines(t, c, closeLimitCTE, nil)
	})
}

// TestDeadlineStoppedServer checks the same against a redis-server stopped
// with SIGSTOP, through clients whose pools hold connections made while it
// ran.
func TestDeadlineStoppedServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a redis-server: skipped in -short mode")
	}
	srv := testredis.Start(t)
	warm := func(t *testing.T, c driver.Conn) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for range 4 {
			if _, _, err := c.Get(ctx, "relock-goredis-test:deadline"); err != nil {
				t.Fatalf("Get before the server stopped: %v", err)
			}
		}
	}
	run := func(t *testing.T, c driver.Conn, closeLimit time.Duration) {
		warm(t, c)
		thaw := adaptertest.Freeze(t, srv)
		checkConnDeadlines(t, c, closeLimit, nil)
		thaw()
	}
	t.Run("default options", func(t *testing.T) {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		defer rdb.Close()
		run(t, goredis.New(rdb), closeLimitDefault)
	})
	t.Run("Open", func(t *testing.T) {
		c, err := goredis.Driver{}.Open(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		run(t, c, closeLimitCTE)
	})
}

// TestCloseWaitsForAbandonedCalls checks that a call left at its deadline
// keeps running until the client's own ReadTimeout ends it, and that
// Conn.Close waits for it (goleak in TestMain finds any left).
func TestCloseWaitsForAbandonedCalls(t *testing.T) {
	addr := adaptertest.SilentServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr, ReadTimeout: 500 * time.Millisecond, MaxRetries: -1})
	defer rdb.Close()
	c := goredis.New(rdb)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.SetNX(ctx, "relock-goredis-test:abandoned", "v", time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SetNX against a silent server: %v; want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > adaptertest.CallLimit {
		t.Fatalf("SetNX returned after %v", d)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// The call ended with the 500 ms ReadTimeout, not before.
	if d := time.Since(start); d < 400*time.Millisecond || d > 5*time.Second {
		t.Fatalf("Close returned %v after the call started; want it to wait for the ReadTimeout (500 ms)", d)
	}
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
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
			t.Cleanup(func() { _ = rdb.Close() })
			return goredis.New(rdb)
		}(), 10)
	})
	t.Run("Open", func(t *testing.T) {
		c, err := goredis.Driver{}.Open(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		adaptertest.CheckClientDeadlines(t, srv, c, 10)
	})
}
