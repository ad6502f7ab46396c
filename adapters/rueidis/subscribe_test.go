package rueidisadapter_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/rueidis"

	rueidisadapter "github.com/relock-go/relock/adapters/rueidis"
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

// subProtocols runs f, for each backend, with a RESP3 client (the rueidis
// default: Pub/Sub on the pinned connection) and a RESP2 one (Pub/Sub on a
// second connection that rueidis opens for it).
func subProtocols(t *testing.T, f func(t *testing.T, b backend, c rueidis.Client)) {
	eachBackend(t, func(t *testing.T, b backend) {
		for _, resp2 := range []bool{false, true} {
			name := "resp3"
			if resp2 {
				name = "resp2"
			}
			t.Run(name, func(t *testing.T) {
				f(t, b, newClient(t, b, func(o *rueidis.ClientOption) {
					if resp2 {
						o.AlwaysRESP2 = true
						o.DisableCache = true
					}
				}))
			})
		}
	})
}

// subChannel returns a channel name no other test uses.
func subChannel() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "relock-test:rueidis:sub:" + hex.EncodeToString(b[:])
}

// subPublish publishes payload on channel through c (not through the
// subscription's connection) and returns the number of receivers.
func subPublish(t *testing.T, c rueidis.Client, channel, payload string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), subWait)
	defer cancel()
	n, err := c.Do(ctx, c.B().Publish().Channel(channel).Message(payload).Build()).AsInt64()
	if err != nil {
		t.Fatalf("PUBLISH %s: %v", channel, err)
	}
	return n
}

// subscribe opens a subscription on conn delivering to r, closed when t
// ends (before the client, whose clean-up was registered earlier).
func subscribe(t *testing.T, conn *rueidisadapter.Conn, r *subRecorder) driver.Subscription {
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
	subProtocols(t, func(t *testing.T, _ backend, c rueidis.Client) {
		r := newSubRecorder(t)
		s := subscribe(t, rueidisadapter.New(c), r)
		a, b, d := subChannel(), subChannel(), subChannel()

		// Add returns once the server confirmed: a message published
		// right after it is delivered.
		mustAdd(t, s, a)
		if n := subPublish(t, c, a, "tok:1700000000:123456:7"); n != 1 {
			t.Fatalf("PUBLISH after Add reached %d subscribers, want 1", n)
		}
		r.expect(t, a, "tok:1700000000:123456:7")

		// Two channels in one Add: rueidis returns on the first
		// confirmation, by which time the server subscribed both.
		mustAdd(t, s, b, d)
		if n := subPublish(t, c, d, "to-d"); n != 1 {
			t.Fatalf("PUBLISH on the second channel of an Add reached %d subscribers, want 1", n)
		}
		subPublish(t, c, b, "to-b")
		subPublish(t, c, a, "to-a")
		r.expect(t, d, "to-d")
		r.expect(t, b, "to-b")
		r.expect(t, a, "to-a")

		// Adding a channel again is harmless.
		mustAdd(t, s, a)
		subPublish(t, c, a, "again")
		r.expect(t, a, "again")

		// Remove: rueidis waits for the server to have applied it.
		if err := s.Remove(ctx, a); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if n := subPublish(t, c, a, "removed"); n != 0 {
			t.Fatalf("PUBLISH after Remove reached %d subscribers, want 0", n)
		}
		subPublish(t, c, b, "marker")
		r.expect(t, b, "marker")

		// Empty calls do nothing.
		if err := s.Add(ctx); err != nil {
			t.Fatalf("Add(): %v", err)
		}
		if err := s.Remove(ctx); err != nil {
			t.Fatalf("Remove(): %v", err)
		}

		// Close ends delivery and the goroutines (goleak in TestMain
		// checks them) and closes the connection.
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		r.stopped.Store(true)
		deadline := time.Now().Add(subWait)
		for subPublish(t, c, d, "closed") != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the server still has a subscriber %v after Close", subWait)
			}
			time.Sleep(time.Millisecond)
		}
		// The client is fine.
		if v, err := c.Do(ctx, c.B().Ping().Build()).ToString(); err != nil || v != "PONG" {
			t.Fatalf("PING after Close = %q, %v", v, err)
		}

		// After Close.
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if err := s.Add(ctx, b); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Add after Close: %v; want an error matching net.ErrClosed", err)
		}
		if err := s.Remove(ctx, b); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Remove after Close: %v; want an error matching net.ErrClosed", err)
		}
		r.quiet(t, 50*time.Millisecond)
	})
}

// TestSubscribeOrder checks that messages arrive in the order published,
// across channels.
func TestSubscribeOrder(t *testing.T) {
	subProtocols(t, func(t *testing.T, _ backend, c rueidis.Client) {
		r := newSubRecorder(t)
		s := subscribe(t, rueidisadapter.New(c), r)
		a, b := subChannel(), subChannel()
		mustAdd(t, s, a, b)
		const n = 200
		cmds := make(rueidis.Commands, n)
		for i := range n {
			ch := a
			if i%3 == 0 {
				ch = b
			}
			cmds[i] = c.B().Publish().Channel(ch).Message(fmt.Sprint(i)).Build()
		}
		dc, cancel := c.Dedicate() // one connection, so the server runs them in order
		defer cancel()
		for _, resp := range dc.DoMulti(context.Background(), cmds...) {
			if err := resp.Error(); err != nil {
				t.Fatal(err)
			}
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
	subProtocols(t, func(t *testing.T, _ backend, c rueidis.Client) {
		const workers, rounds = 16, 5
		channels := make([]string, workers)
		inbox := map[string]chan string{}
		for i := range channels {
			channels[i] = subChannel()
			inbox[channels[i]] = make(chan string, 100)
		}
		var calls atomic.Int32
		s, err := rueidisadapter.New(c).Subscribe(context.Background(), func(channel, payload string) {
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
					if n := subPublish(t, c, ch, want); n != 1 {
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

func TestSubscribeContext(t *testing.T) {
	m := miniredis.RunT(t)
	c := newClient(t, backend{addr: m.Addr(), mini: m}, nil)
	conn := rueidisadapter.New(c)

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
	if err := s.Add(cancelled, subChannel()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Add with a cancelled context: %v; want context.Canceled", err)
	}
	if err := s.Remove(cancelled, subChannel()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Remove with a cancelled context: %v; want context.Canceled", err)
	}
}

// TestSubscribeUnconfirmed checks, on a paused server, that Add waits for
// the confirmation until its context ends, and that Close does not wait
// for the server.
func TestSubscribeUnconfirmed(t *testing.T) {
	srv := testredis.Start(t)
	c := newClient(t, backend{addr: srv.Addr()}, nil)
	r := newSubRecorder(t)
	s, err := rueidisadapter.New(c).Subscribe(context.Background(), r.onMessage)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ch := subChannel()
	mustAdd(t, s, ch)
	if _, err := srv.Do("CLIENT", "PAUSE", "2000", "ALL"); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Add(ctx, subChannel()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Add on a paused server: %v; want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Add returned %v after its context's deadline", d)
	}
	addDone := make(chan error, 1)
	go func() { addDone <- s.Add(context.Background(), subChannel()) }()
	time.Sleep(50 * time.Millisecond)
	start = time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	r.stopped.Store(true)
	// rueidis's Close of the connection waits up to a second for a PING.
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("Close on a paused server took %v", d)
	}
	select {
	case err := <-addDone:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("an Add waiting when Close came returned %v; want an error matching net.ErrClosed", err)
		}
	case <-time.After(subWait):
		t.Fatal("Close left an Add waiting")
	}
}

func TestSubscribeMisuse(t *testing.T) {
	m := miniredis.RunT(t)
	c := newClient(t, backend{addr: m.Addr(), mini: m}, nil)
	ctx := context.Background()

	closed := rueidisadapter.New(c)
	_ = closed.Close()
	if _, err := closed.Subscribe(ctx, func(string, string) {}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Subscribe on a closed Conn: %v; want an error matching net.ErrClosed", err)
	}
	if _, err := rueidisadapter.New(nil).Subscribe(ctx, func(string, string) {}); err == nil {
		t.Fatal("Subscribe on a nil client succeeded")
	}
	if _, err := rueidisadapter.New(c).Subscribe(ctx, nil); err == nil {
		t.Fatal("Subscribe with a nil handler succeeded")
	}

	// A closed client: Subscribe fails with the client's error.
	gone, err := rueidis.NewClient(backend{addr: m.Addr(), mini: m}.options())
	if err != nil {
		t.Fatal(err)
	}
	gone.Close()
	if s, err := rueidisadapter.New(gone).Subscribe(ctx, func(string, string) {}); err == nil {
		_ = s.Close()
		t.Fatal("Subscribe on a closed rueidis client succeeded")
	}
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
		if publish(fmt.Sprint("after-", i)) > 0 {
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
	for _, resp2 := range []bool{false, true} {
		proto := "resp3"
		if resp2 {
			proto = "resp2"
		}
		edit := func(o *rueidis.ClientOption) {
			if resp2 {
				o.AlwaysRESP2 = true
				o.DisableCache = true
			}
		}
		t.Run("miniredis/"+proto, func(t *testing.T) {
			m := miniredis.RunT(t)
			c := newClient(t, backend{addr: m.Addr(), mini: m}, edit)
			r := newSubRecorder(t)
			s := subscribe(t, rueidisadapter.New(c), r)
			ch := subChannel()
			mustAdd(t, s, ch)
			m.Close()
			if err := m.Restart(); err != nil {
				t.Fatal(err)
			}
			subRestart(t, r, ch, func(p string) int64 { return int64(m.Publish(ch, p)) })
			other := subChannel()
			mustAdd(t, s, other)
			// c's own connection broke too: publish through miniredis.
			if n := m.Publish(other, "y"); n != 1 {
				t.Fatalf("PUBLISH after Add reached %d subscribers, want 1", n)
			}
			r.expect(t, other, "y")
		})
		t.Run("redis/"+proto, func(t *testing.T) {
			srv := testredis.Start(t)
			c := newClient(t, backend{addr: srv.Addr()}, edit)
			r := newSubRecorder(t)
			s := subscribe(t, rueidisadapter.New(c), r)
			ch := subChannel()
			mustAdd(t, s, ch)
			subPublish(t, c, ch, "first")
			r.expect(t, ch, "first")

			srv.Restart()
			subRestart(t, r, ch, srvPublish(srv, ch))

			// The server drops the subscriber connection.
			n, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub")
			if err != nil || n.(int64) != 1 {
				t.Fatalf("CLIENT KILL TYPE pubsub = %v, %v; want 1", n, err)
			}
			subRestart(t, r, ch, srvPublish(srv, ch))

			// An Add made while the server is down returns once the
			// new connection confirmed it.
			srv.Stop()
			added := subChannel()
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
			// c's own connection broke too: publish through srv.
			if n := srvPublish(srv, added)("added"); n != 1 {
				t.Fatalf("PUBLISH after Add reached %d subscribers, want 1", n)
			}
			r.expect(t, added, "added")
			srvPublish(srv, ch)("old")
			r.expect(t, ch, "old")
		})
	}
}

// TestSubscribeErrorReply checks that a SUBSCRIBE the server refuses fails
// Add, and that a new connection does not try it again.
func TestSubscribeErrorReply(t *testing.T) {
	srv := testredis.Start(t)
	if _, err := srv.Do("ACL", "SETUSER", "limited", "on", ">pw", "~*", "resetchannels", "&allowed:*", "+@all"); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	c := newClient(t, backend{addr: srv.Addr()}, func(o *rueidis.ClientOption) {
		o.Username, o.Password = "limited", "pw"
	})
	r := newSubRecorder(t)
	s := subscribe(t, rueidisadapter.New(c), r)
	ctx, cancel := context.WithTimeout(context.Background(), subWait)
	defer cancel()
	err := s.Add(ctx, "denied:x")
	if err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("Add of a denied channel: %v; want a NOPERM error", err)
	}
	mustAdd(t, s, "allowed:x")
	subPublish(t, c, "allowed:x", "ok")
	r.expect(t, "allowed:x", "ok")
	if _, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		t.Fatal(err)
	}
	subRestart(t, r, "allowed:x", srvPublish(srv, "allowed:x"))
}

// subscriberIDs returns the ids of the server's Pub/Sub connections.
func subscriberIDs(t *testing.T, srv *testredis.Server) []string {
	t.Helper()
	v, err := srv.Do("CLIENT", "LIST", "TYPE", "pubsub")
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(v.(string)), "\n") {
		for _, f := range strings.Fields(line) {
			if id, ok := strings.CutPrefix(f, "id="); ok {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// TestSubscribeDeadConnection checks that a server that stops answering
// (DEBUG SLEEP: no connection is closed) makes rueidis's health check close
// the connection, which the subscription then replaces.
func TestSubscribeDeadConnection(t *testing.T) {
	for _, resp2 := range []bool{false, true} {
		name := "resp3"
		if resp2 {
			name = "resp2"
		}
		t.Run(name, func(t *testing.T) {
			srv := testredis.Start(t)
			c := newClient(t, backend{addr: srv.Addr()}, func(o *rueidis.ClientOption) {
				o.ConnWriteTimeout = 500 * time.Millisecond // rueidis pings an idle connection every second
				if resp2 {
					o.AlwaysRESP2 = true
					o.DisableCache = true
				}
			})
			r := newSubRecorder(t)
			s := subscribe(t, rueidisadapter.New(c), r)
			ch := subChannel()
			mustAdd(t, s, ch)
			before := subscriberIDs(t, srv)
			if len(before) != 1 {
				t.Fatalf("Pub/Sub connections before: %q, want one", before)
			}
			if _, err := srv.Do("DEBUG", "SLEEP", "3"); err != nil {
				t.Fatalf("DEBUG SLEEP: %v", err)
			}
			subRestart(t, r, ch, srvPublish(srv, ch))
			after := subscriberIDs(t, srv)
			if len(after) != 1 || after[0] == before[0] {
				t.Fatalf("Pub/Sub connections: %q before, %q after; want a new one", before, after)
			}
		})
	}
}
