package redigo_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/redigo"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// The subscription tests that all adapters share are in
// internal/testkit/adaptertest; this file runs them on redigo pools and adds the
// tests of redigo's own ways.

// subBackends runs fn against the shared real server (miniredis runs the
// conformance suite's subscription checks in internal/onmini).
func subBackends(t *testing.T, fn func(t *testing.T, addr string)) {
	fn(t, testredis.Addr(t))
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
	subBackends(t, func(t *testing.T, addr string) {
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
	subBackends(t, func(t *testing.T, addr string) {
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
	subBackends(t, func(t *testing.T, addr string) {
		pool, _ := subPool(t, addr)
		adaptertest.CheckConcurrent(t, subAdapter(pool, addr))
	})
}

// stallServer listens on a loopback port and answers the first command of
// each connection (the subscription's PING) with +PONG, and nothing after
// that. It stops when t ends.
func stallServer(t *testing.T) string {
	t.Helper()
	return fakeServer(t, answerPing)
}

// answerPing answers the first PING on c with +PONG, and nothing after.
func answerPing(c net.Conn) {
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
}

func TestSubscribeContext(t *testing.T) {
	addr := testredis.Addr(t)
	pool, _ := subPool(t, addr)
	r := adaptertest.NewRecorder(t)
	adaptertest.CheckCancelled(t, subAdapter(pool, addr), r)

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
	addr := testredis.Addr(t)
	pool, _ := subPool(t, addr)
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
	// Close.
	conn := redigo.New(pool)
	r := adaptertest.NewRecorder(t)
	s := adaptertest.Subscribe(t, conn, r)
	_ = conn.Close()
	ch := subChannel()
	adaptertest.MustAdd(t, s, ch)
	subPublish(t, addr, ch, "x")
	r.Expect(t, ch, "x")
}

type stallPool struct{}

func (stallPool) GetContext(context.Context) (redis.Conn, error) {
	return nil, errors.New("no server")
}

// TestSubscribeKilled checks that a subscription is one connection: when
// the server drops it (CLIENT KILL TYPE pubsub), Done closes, the
// connection goes back to the pool (closed), Add fails at once, and no new
// connection is dialled (relock's notifier opens a new subscription).
func TestSubscribeKilled(t *testing.T) {
	srv := testredis.Start(t)
	pool, dials := subPool(t, srv.Addr())
	a := subAdapter(pool, srv.Addr())
	r := adaptertest.NewRecorder(t)
	s := adaptertest.Subscribe(t, a.Subscriber, r)
	ch := subChannel()
	adaptertest.MustAdd(t, s, ch)
	a.Publish(t, ch, "first")
	r.Expect(t, ch, "first")
	select {
	case <-s.Done():
		t.Fatal("Done closed on a live subscription")
	default:
	}
	before := dials.Load()

	if n, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil || n.(int64) != 1 {
		t.Fatalf("CLIENT KILL TYPE pubsub = %v, %v; want 1", n, err)
	}
	waitDone(t, s)
	if err := s.Add(context.Background(), subChannel()); err == nil || !strings.HasPrefix(err.Error(), "relock/redigo: ") {
		t.Fatalf("Add after Done: %v; want an error of the adapter's", err)
	}
	if err := s.Remove(context.Background(), ch); err == nil {
		t.Fatal("Remove after Done succeeded")
	}
	deadline := time.Now().Add(adaptertest.Wait)
	for pool.ActiveCount() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections active after Done; want the subscription's given back", pool.ActiveCount())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := a.Publish(t, ch, "lost"); n != 0 {
		t.Fatalf("PUBLISH after the kill reached %d subscribers; want 0 (no reconnection)", n)
	}
	if d := dials.Load(); d != before {
		t.Fatalf("%d connections dialled after the kill; want none", d-before)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after Done: %v", err)
	}
	r.Stop()
	r.Quiet(t, 50*time.Millisecond)
}

// waitDone fails t unless s's Done closes within adaptertest.Wait.
func waitDone(t *testing.T, s interface{ Done() <-chan struct{} }) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(adaptertest.Wait):
		t.Fatalf("Done still open %v after the connection broke", adaptertest.Wait)
	}
}

// TestSubscribeBrokenPending checks that Adds waiting for their
// confirmation when the connection breaks fail then, with an error that
// tells the connection broke, and that Done closes.
func TestSubscribeBrokenPending(t *testing.T) {
	var mu sync.Mutex
	var conns []net.Conn
	stall := fakeServer(t, func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		answerPing(c)
	})
	pool, _ := subPool(t, stall)
	s, err := redigo.New(pool).Subscribe(context.Background(), func(string, string) {})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer s.Close()
	added := make(chan error, 1)
	go func() { added <- s.Add(context.Background(), subChannel()) }()
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	for _, c := range conns {
		_ = c.Close()
	}
	mu.Unlock()
	select {
	case err := <-added:
		if err == nil || !strings.Contains(err.Error(), "relock/redigo: subscription connection broke") {
			t.Fatalf("Add pending when the connection broke: %v", err)
		}
	case <-time.After(adaptertest.Wait):
		t.Fatal("an Add pending when the connection broke still waits")
	}
	waitDone(t, s)
}

// TestSubscribeDeadConnection checks the keepalive: a server that stops
// answering (DEBUG SLEEP: no connection is closed) makes Done close within
// a few seconds, while a quiet connection that answers its PINGs is kept.
func TestSubscribeDeadConnection(t *testing.T) {
	testredis.SkipShort(t, "stalls a private server")
	srv := testredis.Start(t)
	pool, _ := subPool(t, srv.Addr())
	r := adaptertest.NewRecorder(t)
	s := adaptertest.Subscribe(t, redigo.New(pool), r)
	adaptertest.MustAdd(t, s, subChannel())
	time.Sleep(4 * time.Second)
	select {
	case <-s.Done():
		t.Fatal("Done closed on a quiet subscription whose server answers")
	default:
	}
	start := time.Now()
	slept := make(chan struct{})
	go func() { _, _ = srv.Do("DEBUG", "SLEEP", "6"); close(slept) }()
	defer func() { <-slept }()
	waitDone(t, s)
	t.Logf("Done closed %v after the server went silent", time.Since(start).Round(time.Millisecond))
}

// TestSubscribeErrorReply checks that a SUBSCRIBE the server refuses fails
// Add instead of leaving it waiting, and leaves the subscription usable.
func TestSubscribeErrorReply(t *testing.T) {
	srv := testredis.Start(t)
	if _, err := srv.Do("ACL", "SETUSER", "limited", "on", ">pw", "~*", "resetchannels", "&allowed:*", "+@all"); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	pool, _ := subPool(t, srv.Addr(), redis.DialUsername("limited"), redis.DialPassword("pw"))
	a := subAdapter(pool, srv.Addr())
	r := adaptertest.NewRecorder(t)
	s := adaptertest.Subscribe(t, a.Subscriber, r)
	ctx, cancel := context.WithTimeout(context.Background(), adaptertest.Wait)
	defer cancel()
	err := s.Add(ctx, "denied:x", "allowed:y")
	if err == nil || !strings.Contains(err.Error(), "NOPERM") || !errors.Is(err, driver.ErrNoPermission) {
		t.Fatalf("Add of a denied channel: %v; want a NOPERM error matching driver.ErrNoPermission", err)
	}
	adaptertest.MustAdd(t, s, "allowed:x")
	a.Publish(t, "allowed:x", "ok")
	r.Expect(t, "allowed:x", "ok")
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

// TestSubscribePlainConn checks that a pool whose connections cannot take
// a context fails Subscribe, as it fails every command, rather than
// leaving a read that nothing can bound.
func TestSubscribePlainConn(t *testing.T) {
	c := redigo.New(plainPool{testredis.Addr(t)})
	if s, err := c.Subscribe(context.Background(), func(string, string) {}); err == nil {
		_ = s.Close()
		t.Fatal("Subscribe over connections without context support succeeded")
	}
	if _, _, err := c.Get(context.Background(), "k"); err == nil {
		t.Fatal("Get over connections without context support succeeded")
	}
}

// TestSubscribeStalePool checks that Subscribe skips the pooled
// connections that died with a server restart.
func TestSubscribeStalePool(t *testing.T) {
	srv := testredis.Start(t)
	pool, _ := subPool(t, srv.Addr())
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
	srv.Restart()
	a := subAdapter(pool, srv.Addr())
	r := adaptertest.NewRecorder(t)
	s := adaptertest.Subscribe(t, a.Subscriber, r)
	ch := subChannel()
	adaptertest.MustAdd(t, s, ch)
	a.Publish(t, ch, "after restart")
	r.Expect(t, ch, "after restart")
}

// TestSubscribeCloseFrozen checks that Close returns at once when it comes
// while onMessage runs and the server has stopped answering: the
// connection is dropped, not unsubscribed with reads that nothing bounds.
func TestSubscribeCloseFrozen(t *testing.T) {
	srv := testredis.Start(t)
	pool, _ := subPool(t, srv.Addr())
	in, release := make(chan struct{}), make(chan struct{})
	s, err := redigo.New(pool).Subscribe(context.Background(), func(string, string) {
		close(in)
		<-release
	})
	if err != nil {
		t.Fatal(err)
	}
	ch := subChannel()
	adaptertest.MustAdd(t, s, ch)
	subPublish(t, srv.Addr(), ch, "x")
	<-in
	thaw := adaptertest.Freeze(t, srv)
	defer thaw()
	closed := make(chan time.Time, 1)
	go func() { _ = s.Close(); closed <- time.Now() }()
	time.Sleep(50 * time.Millisecond)
	released := time.Now()
	close(release)
	select {
	case at := <-closed:
		if d := at.Sub(released); d > time.Second {
			t.Fatalf("Close returned %v after onMessage did", d)
		}
	case <-time.After(adaptertest.Wait):
		thaw()
		<-closed
		t.Fatal("Close waited on a frozen server")
	}
}

// TestNotifierReopens runs the adapter under relock's notifier: when the
// server kills the subscription connection while a waiter waits, relock
// opens a new subscription through the adapter and adds the waiter's
// channel again, and the waiter gets the lock once it is released.
func TestNotifierReopens(t *testing.T) {
	srv := testredis.Start(t)
	pool, _ := subPool(t, srv.Addr())
	client, err := relock.New(redigo.New(pool))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	held, err := client.Obtain(ctx, "relock-test:redigo:reopen", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		l, err := client.Obtain(ctx, "relock-test:redigo:reopen", time.Minute)
		if err == nil {
			err = l.Release(ctx)
		}
		got <- err
	}()
	subscribed := func() {
		t.Helper()
		deadline := time.Now().Add(adaptertest.Wait)
		for {
			chans, err := srv.Do("PUBSUB", "CHANNELS")
			if list, _ := chans.([]any); err == nil && len(list) > 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no channel subscribed within %v: %v, %v", adaptertest.Wait, chans, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	subscribed()
	if n, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil || n.(int64) != 1 {
		t.Fatalf("CLIENT KILL TYPE pubsub = %v, %v; want 1", n, err)
	}
	subscribed()
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("the waiter's Obtain: %v", err)
		}
	case <-time.After(adaptertest.Wait):
		t.Fatal("the waiter did not get the lock after its release")
	}
}
