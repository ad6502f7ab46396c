package goredisv8_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"runtime"
	"testing"
	"time"

	"github.com/go-redis/redis/v8"

	"github.com/relock-go/relock/adapters/goredisv8"
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

// checkConnDeadlines runs the shared deadline checks on c and closes it;
// closing the subscriptions must take no longer than closeLimit.
// beforeClose, if not nil, runs just before c's Close.
func checkConnDeadlines(t *testing.T, c driver.Conn, closeLimit time.Duration, beforeClose func()) {
	t.Helper()
	calls, closeSubs := adaptertest.DriverCalls(t, c, "relock-goredisv8-test:deadline", closeLimit)
	adaptertest.CheckDeadlines(t, adaptertest.CallDeadline, adaptertest.CallLimit, deadlineRuns(), calls...)
	closeSubs()
	if beforeClose != nil {
		beforeClose()
	}
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("Close took %v", d)
	}
	t.Logf("Close took %v", time.Since(start).Round(time.Millisecond))
	waitDialersGone(t)
}

// waitDialersGone waits, up to 10 s, for go-redis's background dialers to
// end. A pool whose dials failed PoolSize times keeps a goroutine that
// dials again every second until it succeeds or the pool is closed (the
// calls left at their deadline dial with their expired context); goleak
// in TestMain would find it before its next try.
func waitDialersGone(t *testing.T) {
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if !bytes.Contains(buf[:n], []byte("pool.(*ConnPool).tryDial")) {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("a go-redis dialer goroutine is still running 10 s after the client closed")
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDeadlineSilentServer checks that every call returns soon after its
// context's deadline against a server that accepts connections and never
// answers, whatever the client's settings.
func TestDeadlineSilentServer(t *testing.T) {
	addr := adaptertest.SilentServer(t)
	tlsConfig := &tls.Config{InsecureSkipVerify: true}
	t.Run("default options", func(t *testing.T) {
		checkConnDeadlines(t, goredisv8.New(client(t, addr)), adaptertest.CallLimit, nil)
	})
	t.Run("long timeouts", func(t *testing.T) {
		testredis.SkipShort(t, "one more client configuration")
		rdb := client(t, addr, func(o *redis.Options) {
			o.ReadTimeout, o.WriteTimeout, o.MaxRetries = time.Minute, time.Minute, 5
		})
		checkConnDeadlines(t, goredisv8.New(rdb), adaptertest.CallLimit, nil)
	})
	t.Run("TLS", func(t *testing.T) {
		// go-redis's dialer does the handshake within DialTimeout (5 s),
		// whatever the context: the calls run guarded.
		rdb := client(t, addr, func(o *redis.Options) {
			o.TLSConfig = tlsConfig
			if testing.Short() {
				// Still above CallLimit, so that an unguarded call would
				// overrun it, and 3 s shorter than the default's 5 s.
				o.DialTimeout = 2 * time.Second
			}
		})
		checkConnDeadlines(t, goredisv8.New(rdb), 0, func() { _ = rdb.Close() })
	})
	t.Run("cluster client", func(t *testing.T) {
		// go-redis reads the COMMAND table without the caller's context.
		rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}})
		checkConnDeadlines(t, goredisv8.New(rdb), adaptertest.CallLimit, func() { _ = rdb.Close() })
	})
	for i, dsn := range []string{"redis://" + addr, "rediss://" + addr, "redis://" + addr + "?addr=" + addr} {
		t.Run("Open "+dsn, func(t *testing.T) {
			if i > 0 {
				// The TLS (7 s: the handshake's DialTimeout) and cluster
				// clients that Open builds; "TLS" and "cluster client"
				// above cover those configurations under -short.
				testredis.SkipShort(t, "one more client configuration through Open")
			}
			c, err := goredisv8.Driver{}.Open(dsn)
			if err != nil {
				t.Fatal(err)
			}
			checkConnDeadlines(t, c, adaptertest.CallLimit, nil)
		})
	}
}

// TestDeadlineStoppedServer checks the same against a redis-server stopped
// with SIGSTOP, through clients whose pools hold connections made while it
// ran.
func TestDeadlineStoppedServer(t *testing.T) {
	testredis.SkipShort(t, "starts a redis-server")
	srv := testredis.Start(t)
	run := func(t *testing.T, c driver.Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for range 4 {
			if _, _, err := c.Get(ctx, "relock-goredisv8-test:deadline"); err != nil {
				t.Fatalf("Get before the server stopped: %v", err)
			}
		}
		thaw := adaptertest.Freeze(t, srv)
		checkConnDeadlines(t, c, adaptertest.CallLimit, nil)
		thaw()
	}
	t.Run("default options", func(t *testing.T) { run(t, goredisv8.New(client(t, srv.Addr()))) })
	t.Run("Open", func(t *testing.T) {
		c, err := goredisv8.Driver{}.Open(srv.URL())
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
	adaptertest.CheckClientDeadlines(t, srv, goredisv8.New(client(t, srv.Addr())), 10)
	c, err := goredisv8.Driver{}.Open(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	adaptertest.CheckClientDeadlines(t, srv, c, 10)
}
