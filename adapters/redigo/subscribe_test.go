package redigo_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gomodule/redigo/redis"

	"github.com/relock-go/relock/adapters/redigo"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// The subscription tests that all adapters share are in
// internal/testkit/adaptertest; this file runs them on redigo pools and adds the
// tests of redigo's own ways.

// subBackends runs fn against a fresh miniredis and against the real
// server.
func subBackends(t *testing.T, fn func(t *testing.T, addr string, m *miniredis.Miniredis)) {
	t.Run("miniredis", func(t *testing.T) {
		m := miniredis.RunT(t)
		fn(t, m.Addr(), m)
	})
	t.Run("redis", func(t *testing.T) {
		fn(t, testredis.Addr(t), nil)
	})
}

// subPool returns a pool dialing addr with opts, closed when t ends, and a
// counter of the connections it dialled.
func subPool(t *testing.T, addr string, opts ...redis.DialOption) (*redis.Pool, *atomic.Int32) {
	t.Helper()
	var dials atomic.Int32
	p := &redis.Pool{
		MaxIdle: 8,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			dials.Add(1)
			return redis.DialContext(ctx, "tcp", addr, opts...)
		},
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, &dials
}

// subAdapter returns the shared tests' view of a Conn on pool, which
// publishes through connections of its own to addr.
func subAdapter(pool redigo.Pool, addr string) adaptertest.Adapter {
	return adaptertest.Adapter{
		Name:       "redigo",
		Subscriber: redigo.New(pool),
		Publish: func(t *testing.T, channel, payload string) int64 {
			return subPublish(t, addr, channel, payload)
		},
	}
}

// subChannel returns a channel name no other test uses.
func subChannel() string { return adaptertest.Channel("redigo") }

// subPublish publishes payload on channel through a connection of its own
// and returns the number of receivers.
func subPublish(t *testing.T, addr, channel, payload string) int64 {
	t.Helper()
	c, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(adaptertest.Wait), redis.DialReadTimeout(adaptertest.Wait))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	n, err := redis.Int64(c.Do("PUBLISH", channel, payload))
	if err != nil {
		t.Fatalf("PUBLISH %s: %v", channel, err)
	}
	return n
}

func TestSubscribe(t *testing.T) {
	subBackends(t, func(t *testing.T, addr string, _ *miniredis.Miniredis) {
		pool, _ := subPool(t, addr)
		inUse := func() int { st := pool.Stats(); return st.ActiveCount - st.IdleCount }
		// Remove returns once sent, not once applied. Close gives the
		// connection back to the pool (closed, not idle in subscribed
		// state).
		adaptertest.CheckSubscribe(t, subAdapter(pool, addr), adaptertest.SubscribeOptions{
			BeforeClose: func(t *testing.T) {
				if n := inUse(); n != 1 {
					t.Fatalf("pool has %d connections in use, want 1 (the subscription's)", n)
				}
			},
			AfterClose: func(t *testing.T) {
				if n := inUse(); n != 0 {
					t.Fatalf("pool has %d connections in use after Close, want 0", n)
				}
			},
			Unsubscribed: func(t *testing.T) {
				rc := pool.Get()
				if v, err := redis.String(rc.Do("PING")); err != nil || v != "PONG" {
					t.Fatalf("PING on a pooled connection after Close = %q, %v", v, err)
				}
				_ = rc.Close()
			},
		})
	})
}

// TestSubscribeOrder checks that messages arrive in the order published,
// across channels.
func TestSubscribeOrder(t *testing.T) {
	subBackends(t, func(t *testing.T, addr string, _ *miniredis.Miniredis) {
		pool, _ := subPool(t, addr)
		adaptertest.CheckOrder(t, subAdapter(pool, addr), func(t *testing.T, msgs []adaptertest.Message) {
			pc, err := redis.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			for _, m := range msgs {
				if err := pc.Send("PUBLISH", m.Channel, m.Payload); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := pc.Do(""); err != nil {
				t.Fatal(err)
			}
		})
	})
}

// TestSubscribeConcurrent runs Adds, Removes and messages from many
// goroutines at once, for the race detector.
func TestSubscribeConcurrent(t *testing.T) {
	subBackends(t, func(t *testing.T, addr string, _ *miniredis.Miniredis) {
		pool, _ := subPool(t, addr)
		adaptertest.CheckConcurrent(t, subAdapter(pool, addr))
	})
}

// stallServer listens on a loopback port and answers the first command of
// each connection (the subscription's PING) with +PONG, and nothing after
// that. It stops when t ends.
func stallServer(t *testing.T) string {
	t.Helper()
	return fakeServer(t, func(c net.Conn) {
		var got []byte
		buf := make([]byte, 512)
		for !bytes.Contains(got, []byte("PING\r\n")) {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			got = append(got, buf[:n]...)
		}
		if _, err := c.Write([]byte("+PONG\r\n")); err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, c)
	})
}

func TestSubscribeContext(t *testing.T) {
	m := miniredis.RunT(t)
	pool, _ := subPool(t, m.Addr())
	r := adaptertest.NewRecorder(t)
	adaptertest.CheckCancelled(t, subAdapter(pool, m.Addr()), r)

	// A server that never confirms: Add waits until its context ends, and
	// Close returns at once all the same.
	stall := stallServer(t)
	spool, _ := subPool(t, stall)
	s2, err := redigo.New(spool).Subscribe(context.Background(), r.OnMessage)
	if err != nil {
		t.Fatalf("Subscribe to a server that answers PING: %v", err)
	}
	defer s2.Close()
	ctx, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	start := time.Now()
	if err := s2.Add(ctx, subChannel()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Add without confirmation: %v; want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Add returned %v after its context's deadline", d)
	}
	addDone := make(chan error, 1)
	go func() { addDone <- s2.Add(context.Background(), subChannel()) }()
	time.Sleep(50 * time.Millisecond)
	start = time.Now()
	if err := s2.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close on a silent connection took %v", d)
	}
	select {
	case err := <-addDone:
		if err == nil {
			t.Fatal("an Add waiting when Close came returned nil")
		}
	case <-time.After(adaptertest.Wait):
		t.Fatal("Close left an Add waiting")
	}
}

func TestSubscribeMisuse(t *testing.T) {
	m := miniredis.RunT(t)
	pool, _ := subPool(t, m.Addr())
	ctx := context.Background()

	closed := redigo.New(pool)
	_ = closed.Close()
	if _, err := closed.Subscribe(ctx, func(string, string) {}); !errors.Is(err, redigo.ErrClosed) {
		t.Fatalf("Subscribe on a closed Conn: %v; want ErrClosed", err)
	}
	if _, err := redigo.New(nil).Subscribe(ctx, func(string, string) {}); !errors.Is(err, redigo.ErrNilPool) {
		t.Fatalf("Subscribe on a nil pool: %v; want ErrNilPool", err)
	}
	if _, err := redigo.New(pool).Subscribe(ctx, nil); err == nil {
		t.Fatal("Subscribe with a nil handler succeeded")
	}
	if _, err := redigo.New(stallPool{}).Subscribe(ctx, func(string, string) {}); err == nil || !strings.Contains(err.Error(), "no server") {
		t.Fatalf("Subscribe with a failing pool: %v", err)
	}

	// Closing the Conn leaves an open subscription working until its own
	// Close; it cannot reconnect, though.
	conn := redigo.New(pool)
	r := adaptertest.NewRecorder(t)
	s := adaptertest.Subscribe(t, conn, r)
	_ = conn.Close()
	ch := subChannel()
	adaptertest.MustAdd(t, s, ch)
	subPublish(t, m.Addr(), ch, "x")
	r.Expect(t, ch, "x")
}

type stallPool struct{}

func (stallPool) GetContext(context.Context) (redis.Conn, error) {
	return nil, errors.New("no server")
}

func TestSubscribeReconnect(t *testing.T) {
	t.Run("miniredis", func(t *testing.T) {
		m := miniredis.RunT(t)
		pool, dials := subPool(t, m.Addr())
		r := adaptertest.NewRecorder(t)
		s := adaptertest.Subscribe(t, redigo.New(pool), r)
		ch := subChannel()
		adaptertest.MustAdd(t, s, ch)
		before := dials.Load()
		m.Close()
		if err := m.Restart(); err != nil {
			t.Fatal(err)
		}
		adaptertest.WaitResubscribed(t, r, ch, func(p string) int64 { return int64(m.Publish(ch, p)) })
		if dials.Load() == before {
			t.Fatal("no new connection was dialled")
		}
		// Adds and Removes keep working on the new connection.
		other := subChannel()
		adaptertest.MustAdd(t, s, other)
		subPublish(t, m.Addr(), other, "y")
		r.Expect(t, other, "y")
	})
	t.Run("redis", func(t *testing.T) {
		srv := testredis.Start(t)
		pool, dials := subPool(t, srv.Addr())
		a := subAdapter(pool, srv.Addr())
		r := adaptertest.NewRecorder(t)
		s := adaptertest.Subscribe(t, a.Subscriber, r)
		ch := subChannel()
		adaptertest.MustAdd(t, s, ch)
		a.Publish(t, ch, "first")
		r.Expect(t, ch, "first")

		// The pool's idle connections die with the server too.
		var idle []redis.Conn
		for range 4 {
			rc := pool.Get()
			_, _ = rc.Do("PING")
			idle = append(idle, rc)
		}
		for _, rc := range idle {
			_ = rc.Close()
		}
		if n := pool.Stats().IdleCount; n < 4 {
			t.Fatalf("%d idle connections, want at least 4", n)
		}

		before := dials.Load()
		srv.Restart()
		adaptertest.WaitResubscribed(t, r, ch, adaptertest.ServerPublish(srv, ch))
		if dials.Load() == before {
			t.Fatal("no new connection was dialled")
		}

		adaptertest.CheckKillSubscriber(t, srv, r, ch)
		adaptertest.CheckAddAcrossRestart(t, srv, s, r, ch, subChannel(), a.Publish)
	})
}

// TestSubscribeDeadConnection checks the health check: a server that stops
// answering (DEBUG SLEEP, no connection is closed) makes the subscription
// take a new connection, which gets the messages once it answers again.
func TestSubscribeDeadConnection(t *testing.T) {
	testredis.SkipShort(t, "kills and stalls a private server")
	srv := testredis.Start(t)
	pool, dials := subPool(t, srv.Addr())
	r := adaptertest.NewRecorder(t)
	s := adaptertest.Subscribe(t, redigo.New(pool), r)
	ch := subChannel()
	adaptertest.MustAdd(t, s, ch)
	before := dials.Load()
	// A quiet connection that answers its PINGs is kept.
	time.Sleep(4 * time.Second)
	if n := dials.Load(); n != before {
		t.Fatalf("%d connections dialled while the server was up and the subscription quiet", n-before)
	}
	if _, err := srv.Do("DEBUG", "SLEEP", "4.5"); err != nil {
		t.Fatalf("DEBUG SLEEP: %v", err)
	}
	if dials.Load() == before {
		t.Fatal("the subscription did not give up its silent connection")
	}
	adaptertest.WaitResubscribed(t, r, ch, adaptertest.ServerPublish(srv, ch))
}

// TestSubscribeErrorReply checks that a SUBSCRIBE the server refuses fails
// Add instead of leaving it waiting, and leaves the subscription usable.
func TestSubscribeErrorReply(t *testing.T) {
	srv := testredis.Start(t)
	adaptertest.CheckErrorReply(t, srv, func(user, password string) adaptertest.Adapter {
		pool, _ := subPool(t, srv.Addr(), redis.DialUsername(user), redis.DialPassword(password))
		return subAdapter(pool, srv.Addr())
	})
}

// plainPool hands out connections that implement neither
// redis.ConnWithContext nor redis.ConnWithTimeout.
type plainPool struct{ addr string }

func (p plainPool) GetContext(ctx context.Context) (redis.Conn, error) {
	c, err := redis.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	return struct{ redis.Conn }{c}, nil
}

// TestSubscribePlainConn runs a subscription over connections without
// context or timeout support: reads are ended by closing the connection.
func TestSubscribePlainConn(t *testing.T) {
	m := miniredis.RunT(t)
	r := adaptertest.NewRecorder(t)
	s := adaptertest.Subscribe(t, redigo.New(plainPool{m.Addr()}), r)
	ch := subChannel()
	adaptertest.MustAdd(t, s, ch)
	subPublish(t, m.Addr(), ch, "plain")
	r.Expect(t, ch, "plain")

	m.Close()
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	adaptertest.WaitResubscribed(t, r, ch, func(p string) int64 { return int64(m.Publish(ch, p)) })

	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	r.Stop()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v", d)
	}
	subPublish(t, m.Addr(), ch, "closed")
	r.Quiet(t, 50*time.Millisecond)
}
