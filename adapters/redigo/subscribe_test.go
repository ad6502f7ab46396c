package redigo_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gomodule/redigo/redis"

	"github.com/relock-go/relock/adapters/redigo"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testredis"
)

// subWait bounds every wait of these tests for something that should
// happen at once.
const subWait = 5 * time.Second

// subMsg is one message a subscription delivered.
type subMsg struct{ channel, payload string }

// subRecorder is an onMessage handler that records what it gets. It fails
// the test when it is called concurrently, or after stop.
type subRecorder struct {
	t       *testing.T
	msgs    chan subMsg
	running atomic.Int32
	stopped atomic.Bool
}

func newSubRecorder(t *testing.T) *subRecorder {
	return &subRecorder{t: t, msgs: make(chan subMsg, 10000)}
}

func (r *subRecorder) onMessage(channel, payload string) {
	if r.running.Add(1) != 1 {
		r.t.Errorf("onMessage(%q, %q) called while another call runs", channel, payload)
	}
	defer r.running.Add(-1)
	if r.stopped.Load() {
		r.t.Errorf("onMessage(%q, %q) called after Close returned", channel, payload)
	}
	select {
	case r.msgs <- subMsg{channel, payload}:
	default:
		r.t.Errorf("recorder full")
	}
}

// expect fails t unless the next message is payload on channel.
func (r *subRecorder) expect(t *testing.T, channel, payload string) {
	t.Helper()
	select {
	case m := <-r.msgs:
		if m != (subMsg{channel, payload}) {
			t.Fatalf("got message %q on %q; want %q on %q", m.payload, m.channel, payload, channel)
		}
	case <-time.After(subWait):
		t.Fatalf("no message %q on %q within %v", payload, channel, subWait)
	}
}

// quiet fails t if a message arrives within d.
func (r *subRecorder) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-r.msgs:
		t.Fatalf("unexpected message %q on %q", m.payload, m.channel)
	case <-time.After(d):
	}
}

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

// subChannel returns a channel name no other test uses.
func subChannel(t *testing.T) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "relock-test:redigo:sub:" + hex.EncodeToString(b[:])
}

// subPublish publishes payload on channel through a connection of its own
// and returns the number of receivers.
func subPublish(t *testing.T, addr, channel, payload string) int64 {
	t.Helper()
	c, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(subWait), redis.DialReadTimeout(subWait))
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

// subscribe opens a subscription on conn delivering to r, closed when t
// ends.
func subscribe(t *testing.T, conn *redigo.Conn, r *subRecorder) driver.Subscription {
	t.Helper()
	s, err := conn.Subscribe(context.Background(), r.onMessage)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustAdd(t *testing.T, s driver.Subscription, channels ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), subWait)
	defer cancel()
	if err := s.Add(ctx, channels...); err != nil {
		t.Fatalf("Add(%q): %v", channels, err)
	}
}

func TestSubscribe(t *testing.T) {
	ctx := context.Background()
	subBackends(t, func(t *testing.T, addr string, _ *miniredis.Miniredis) {
		pool, _ := subPool(t, addr)
		r := newSubRecorder(t)
		s := subscribe(t, redigo.New(pool), r)
		a, b, c := subChannel(t), subChannel(t), subChannel(t)

		// Add returns once the server confirmed: a message published
		// right after it is delivered.
		mustAdd(t, s, a)
		if n := subPublish(t, addr, a, "tok:1700000000:123456:7"); n != 1 {
			t.Fatalf("PUBLISH after Add reached %d subscribers, want 1", n)
		}
		r.expect(t, a, "tok:1700000000:123456:7")

		// Two channels in one Add, both confirmed.
		mustAdd(t, s, b, c)
		if n := subPublish(t, addr, c, "to-c"); n != 1 {
			t.Fatalf("PUBLISH on the second channel of an Add reached %d subscribers, want 1", n)
		}
		subPublish(t, addr, b, "to-b")
		subPublish(t, addr, a, "to-a")
		r.expect(t, c, "to-c")
		r.expect(t, b, "to-b")
		r.expect(t, a, "to-a")

		// Adding a channel again is harmless.
		mustAdd(t, s, a)
		subPublish(t, addr, a, "again")
		r.expect(t, a, "again")

		// Remove: once the server applied it, nothing more arrives on a.
		if err := s.Remove(ctx, a); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		deadline := time.Now().Add(subWait)
		late := 0
		for subPublish(t, addr, a, "late") != 0 {
			late++
			if time.Now().After(deadline) {
				t.Fatalf("PUBLISH still reaches a subscriber %v after Remove", subWait)
			}
			time.Sleep(time.Millisecond)
		}
		subPublish(t, addr, b, "marker")
		for {
			m := <-r.msgs // the marker comes, or expect below fails
			if m == (subMsg{a, "late"}) && late > 0 {
				late--
				continue
			}
			if m != (subMsg{b, "marker"}) {
				t.Fatalf("after Remove: got %q on %q", m.payload, m.channel)
			}
			break
		}
		subPublish(t, addr, a, "removed")
		subPublish(t, addr, c, "still-c")
		r.expect(t, c, "still-c")

		// Empty calls do nothing.
		if err := s.Add(ctx); err != nil {
			t.Fatalf("Add(): %v", err)
		}
		if err := s.Remove(ctx); err != nil {
			t.Fatalf("Remove(): %v", err)
		}

		// Close ends delivery, gives the connection back to the pool
		// (closed, not idle in subscribed state) and the goroutines end
		// (goleak in TestMain checks that).
		if st := pool.Stats(); st.ActiveCount-st.IdleCount != 1 {
			t.Fatalf("pool has %d connections in use, want 1 (the subscription's)", st.ActiveCount-st.IdleCount)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		r.stopped.Store(true)
		if st := pool.Stats(); st.ActiveCount-st.IdleCount != 0 {
			t.Fatalf("pool has %d connections in use after Close, want 0", st.ActiveCount-st.IdleCount)
		}
		deadline = time.Now().Add(subWait)
		for subPublish(t, addr, c, "closed") != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the server still has a subscriber %v after Close", subWait)
			}
			time.Sleep(time.Millisecond)
		}
		rc := pool.Get()
		if v, err := redis.String(rc.Do("PING")); err != nil || v != "PONG" {
			t.Fatalf("PING on a pooled connection after Close = %q, %v", v, err)
		}
		_ = rc.Close()

		// After Close.
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if err := s.Add(ctx, b); err == nil {
			t.Fatal("Add after Close succeeded")
		}
		if err := s.Remove(ctx, b); err == nil {
			t.Fatal("Remove after Close succeeded")
		}
		r.quiet(t, 50*time.Millisecond)
	})
}

// TestSubscribeOrder checks that messages arrive in the order published,
// across channels.
func TestSubscribeOrder(t *testing.T) {
	subBackends(t, func(t *testing.T, addr string, _ *miniredis.Miniredis) {
		pool, _ := subPool(t, addr)
		r := newSubRecorder(t)
		s := subscribe(t, redigo.New(pool), r)
		a, b := subChannel(t), subChannel(t)
		mustAdd(t, s, a, b)
		pc, err := redis.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		const n = 200
		for i := range n {
			ch := a
			if i%3 == 0 {
				ch = b
			}
			if err := pc.Send("PUBLISH", ch, fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := pc.Do(""); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			ch := a
			if i%3 == 0 {
				ch = b
			}
			r.expect(t, ch, fmt.Sprint(i))
		}
	})
}

// TestSubscribeConcurrent runs Adds, Removes and messages from many
// goroutines at once, for the race detector.
func TestSubscribeConcurrent(t *testing.T) {
	subBackends(t, func(t *testing.T, addr string, _ *miniredis.Miniredis) {
		pool, _ := subPool(t, addr)
		const workers, rounds = 16, 5
		channels := make([]string, workers)
		inbox := map[string]chan string{}
		for i := range channels {
			channels[i] = subChannel(t)
			inbox[channels[i]] = make(chan string, 100)
		}
		var calls atomic.Int32
		s, err := redigo.New(pool).Subscribe(context.Background(), func(channel, payload string) {
			if calls.Add(1) != 1 {
				t.Errorf("onMessage called concurrently")
			}
			defer calls.Add(-1)
			select {
			case inbox[channel] <- payload:
			default:
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var wg sync.WaitGroup
		for i, ch := range channels {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), subWait)
				defer cancel()
				for round := range rounds {
					if err := s.Add(ctx, ch); err != nil {
						t.Errorf("worker %d: Add: %v", i, err)
						return
					}
					want := fmt.Sprintf("%d-%d", i, round)
					if n := subPublish(t, addr, ch, want); n != 1 {
						t.Errorf("worker %d: PUBLISH reached %d subscribers, want 1", i, n)
						return
					}
					select {
					case got := <-inbox[ch]:
						if got != want {
							t.Errorf("worker %d: got %q, want %q", i, got, want)
							return
						}
					case <-ctx.Done():
						t.Errorf("worker %d: message %q not delivered", i, want)
						return
					}
					if err := s.Remove(ctx, ch); err != nil {
						t.Errorf("worker %d: Remove: %v", i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// stallServer listens on a loopback port and answers the first command of
// each connection (the subscription's PING) with +PONG, and nothing after
// that. It stops when t ends.
func stallServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
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
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func TestSubscribeContext(t *testing.T) {
	m := miniredis.RunT(t)
	pool, _ := subPool(t, m.Addr())
	conn := redigo.New(pool)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if s, err := conn.Subscribe(cancelled, func(string, string) {}); !errors.Is(err, context.Canceled) {
		if s != nil {
			_ = s.Close()
		}
		t.Fatalf("Subscribe with a cancelled context: %v; want context.Canceled", err)
	}

	r := newSubRecorder(t)
	s := subscribe(t, conn, r)
	if err := s.Add(cancelled, subChannel(t)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Add with a cancelled context: %v; want context.Canceled", err)
	}
	if err := s.Remove(cancelled, subChannel(t)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Remove with a cancelled context: %v; want context.Canceled", err)
	}

	// A server that never confirms: Add waits until its context ends, and
	// Close returns at once all the same.
	stall := stallServer(t)
	spool, _ := subPool(t, stall)
	s2, err := redigo.New(spool).Subscribe(context.Background(), r.onMessage)
	if err != nil {
		t.Fatalf("Subscribe to a server that answers PING: %v", err)
	}
	defer s2.Close()
	ctx, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	start := time.Now()
	if err := s2.Add(ctx, subChannel(t)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Add without confirmation: %v; want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Add returned %v after its context's deadline", d)
	}
	addDone := make(chan error, 1)
	go func() { addDone <- s2.Add(context.Background(), subChannel(t)) }()
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
	case <-time.After(subWait):
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
	r := newSubRecorder(t)
	s := subscribe(t, conn, r)
	_ = conn.Close()
	ch := subChannel(t)
	mustAdd(t, s, ch)
	subPublish(t, m.Addr(), ch, "x")
	r.expect(t, ch, "x")
}

type stallPool struct{}

func (stallPool) GetContext(context.Context) (redis.Conn, error) {
	return nil, errors.New("no server")
}

// subRestart waits, publishing on channel, until the subscription gets a
// message again: it has reconnected and subscribed again. publish returns
// the number of receivers, or -1 when the server is not reachable.
func subRestart(t *testing.T, r *subRecorder, channel string, publish func(payload string) int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("no message on %q within 10s: the subscription did not come back", channel)
		}
		payload := fmt.Sprint("after-", i)
		if publish(payload) > 0 {
			// Delivered, unless the old connection broke just now.
			select {
			case m := <-r.msgs:
				if m.channel != channel || !strings.HasPrefix(m.payload, "after-") {
					t.Fatalf("got %q on %q", m.payload, m.channel)
				}
				// Drain what earlier publishes delivered.
				for {
					select {
					case <-r.msgs:
						continue
					case <-time.After(50 * time.Millisecond):
					}
					return
				}
			case <-time.After(time.Second):
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// srvPublish publishes through srv.Do, -1 when that fails.
func srvPublish(srv *testredis.Server, channel string) func(string) int64 {
	return func(payload string) int64 {
		n, err := srv.Do("PUBLISH", channel, payload)
		if err != nil {
			return -1
		}
		return n.(int64)
	}
}

func TestSubscribeReconnect(t *testing.T) {
	t.Run("miniredis", func(t *testing.T) {
		m := miniredis.RunT(t)
		pool, dials := subPool(t, m.Addr())
		r := newSubRecorder(t)
		s := subscribe(t, redigo.New(pool), r)
		ch := subChannel(t)
		mustAdd(t, s, ch)
		before := dials.Load()
		m.Close()
		if err := m.Restart(); err != nil {
			t.Fatal(err)
		}
		subRestart(t, r, ch, func(p string) int64 { return int64(m.Publish(ch, p)) })
		if dials.Load() == before {
			t.Fatal("no new connection was dialled")
		}
		// Adds and Removes keep working on the new connection.
		other := subChannel(t)
		mustAdd(t, s, other)
		subPublish(t, m.Addr(), other, "y")
		r.expect(t, other, "y")
	})
	t.Run("redis", func(t *testing.T) {
		srv := testredis.Start(t)
		pool, dials := subPool(t, srv.Addr())
		r := newSubRecorder(t)
		s := subscribe(t, redigo.New(pool), r)
		ch := subChannel(t)
		mustAdd(t, s, ch)
		subPublish(t, srv.Addr(), ch, "first")
		r.expect(t, ch, "first")

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
		subRestart(t, r, ch, srvPublish(srv, ch))
		if dials.Load() == before {
			t.Fatal("no new connection was dialled")
		}

		// The server drops the subscriber connection.
		n, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub")
		if err != nil || n.(int64) != 1 {
			t.Fatalf("CLIENT KILL TYPE pubsub = %v, %v; want 1", n, err)
		}
		subRestart(t, r, ch, srvPublish(srv, ch))

		// An Add made while the server is down returns once the new
		// connection confirmed it.
		srv.Stop()
		added := subChannel(t)
		addDone := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			addDone <- s.Add(ctx, added)
		}()
		time.Sleep(100 * time.Millisecond)
		select {
		case err := <-addDone:
			t.Fatalf("Add returned %v while the server is down", err)
		default:
		}
		srv.Restart()
		select {
		case err := <-addDone:
			if err != nil {
				t.Fatalf("Add across a restart: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Add did not return after the server came back")
		}
		if n := subPublish(t, srv.Addr(), added, "added"); n != 1 {
			t.Fatalf("PUBLISH after Add reached %d subscribers, want 1", n)
		}
		r.expect(t, added, "added")
		subPublish(t, srv.Addr(), ch, "old")
		r.expect(t, ch, "old")
	})
}

// TestSubscribeDeadConnection checks the health check: a server that stops
// answering (DEBUG SLEEP, no connection is closed) makes the subscription
// take a new connection, which gets the messages once it answers again.
func TestSubscribeDeadConnection(t *testing.T) {
	srv := testredis.Start(t)
	pool, dials := subPool(t, srv.Addr())
	r := newSubRecorder(t)
	s := subscribe(t, redigo.New(pool), r)
	ch := subChannel(t)
	mustAdd(t, s, ch)
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
	subRestart(t, r, ch, srvPublish(srv, ch))
}

// TestSubscribeErrorReply checks that a SUBSCRIBE the server refuses fails
// Add instead of leaving it waiting, and leaves the subscription usable.
func TestSubscribeErrorReply(t *testing.T) {
	srv := testredis.Start(t)
	if _, err := srv.Do("ACL", "SETUSER", "limited", "on", ">pw", "~*", "resetchannels", "&allowed:*", "+@all"); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	pool, _ := subPool(t, srv.Addr(), redis.DialUsername("limited"), redis.DialPassword("pw"))
	r := newSubRecorder(t)
	s := subscribe(t, redigo.New(pool), r)
	ctx, cancel := context.WithTimeout(context.Background(), subWait)
	defer cancel()
	err := s.Add(ctx, "denied:x")
	if err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("Add of a denied channel: %v; want a NOPERM error", err)
	}
	mustAdd(t, s, "allowed:x")
	subPublish(t, srv.Addr(), "allowed:x", "ok")
	r.expect(t, "allowed:x", "ok")

	// A reconnection does not try the refused channel again.
	if _, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		t.Fatal(err)
	}
	subRestart(t, r, "allowed:x", srvPublish(srv, "allowed:x"))
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
	r := newSubRecorder(t)
	s := subscribe(t, redigo.New(plainPool{m.Addr()}), r)
	ch := subChannel(t)
	mustAdd(t, s, ch)
	subPublish(t, m.Addr(), ch, "plain")
	r.expect(t, ch, "plain")

	m.Close()
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	subRestart(t, r, ch, func(p string) int64 { return int64(m.Publish(ch, p)) })

	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	r.stopped.Store(true)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v", d)
	}
	subPublish(t, m.Addr(), ch, "closed")
	r.quiet(t, 50*time.Millisecond)
}
