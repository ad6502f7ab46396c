package rueidisadapter_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/rueidis"

	rueidisadapter "github.com/relock-go/relock/adapters/rueidis"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// The subscription tests that all adapters share are in
// internal/testkit/adaptertest; this file runs them on rueidis clients and adds the
// tests of rueidis's own ways.

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
func subChannel() string { return adaptertest.Channel("rueidis") }

// subPublish publishes payload on channel through c (not through the
// subscription's connection) and returns the number of receivers.
func subPublish(t *testing.T, c rueidis.Client, channel, payload string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), adaptertest.Wait)
	defer cancel()
	n, err := c.Do(ctx, c.B().Publish().Channel(channel).Message(payload).Build()).AsInt64()
	if err != nil {
		t.Fatalf("PUBLISH %s: %v", channel, err)
	}
	return n
}

// subAdapter returns the shared tests' view of a Conn on c, which also
// publishes through c.
func subAdapter(c rueidis.Client) adaptertest.Adapter {
	return adaptertest.Adapter{
		Name:       "rueidis",
		Subscriber: rueidisadapter.New(c),
		Publish: func(t *testing.T, channel, payload string) int64 {
			return subPublish(t, c, channel, payload)
		},
	}
}

// srvPublish publishes through srv.Do (as adaptertest.ServerPublish), for
// when c's own connection broke with the server.
func srvPublish(srv *testredis.Server) adaptertest.PublishFunc {
	return func(_ *testing.T, channel, payload string) int64 {
		return adaptertest.ServerPublish(srv, channel)(payload)
	}
}

func TestSubscribe(t *testing.T) {
	subProtocols(t, func(t *testing.T, _ backend, c rueidis.Client) {
		// rueidis waits for the server to have applied a Remove.
		adaptertest.CheckSubscribe(t, subAdapter(c), adaptertest.SubscribeOptions{
			RemoveConfirmed: true,
			ClosedErr:       net.ErrClosed,
			Unsubscribed: func(t *testing.T) {
				// The client is fine.
				if v, err := c.Do(context.Background(), c.B().Ping().Build()).ToString(); err != nil || v != "PONG" {
					t.Fatalf("PING after Close = %q, %v", v, err)
				}
			},
		})
	})
}

// TestSubscribeOrder checks that messages arrive in the order published,
// across channels.
func TestSubscribeOrder(t *testing.T) {
	subProtocols(t, func(t *testing.T, _ backend, c rueidis.Client) {
		adaptertest.CheckOrder(t, subAdapter(c), func(t *testing.T, msgs []adaptertest.Message) {
			cmds := make(rueidis.Commands, len(msgs))
			for i, m := range msgs {
				cmds[i] = c.B().Publish().Channel(m.Channel).Message(m.Payload).Build()
			}
			dc, cancel := c.Dedicate() // one connection, so the server runs them in order
			defer cancel()
			for _, resp := range dc.DoMulti(context.Background(), cmds...) {
				if err := resp.Error(); err != nil {
					t.Fatal(err)
				}
			}
		})
	})
}

// TestSubscribeConcurrent runs Adds, Removes and messages from many
// goroutines at once, for the race detector.
func TestSubscribeConcurrent(t *testing.T) {
	subProtocols(t, func(t *testing.T, _ backend, c rueidis.Client) {
		adaptertest.CheckConcurrent(t, subAdapter(c))
	})
}

func TestSubscribeContext(t *testing.T) {
	m := miniredis.RunT(t)
	c := newClient(t, backend{addr: m.Addr(), mini: m}, nil)
	adaptertest.CheckCancelled(t, subAdapter(c), adaptertest.NewRecorder(t))
}

// TestSubscribeUnconfirmed checks, on a paused server, that Add waits for
// the confirmation until its context ends, and that Close does not wait
// for the server.
func TestSubscribeUnconfirmed(t *testing.T) {
	testredis.SkipShort(t, "stalls a private server for seconds")
	srv := testredis.Start(t)
	c := newClient(t, backend{addr: srv.Addr()}, nil)
	r := adaptertest.NewRecorder(t)
	s, err := rueidisadapter.New(c).Subscribe(context.Background(), r.OnMessage)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ch := subChannel()
	adaptertest.MustAdd(t, s, ch)
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
	r.Stop()
	// rueidis's Close of the connection waits up to a second for a PING.
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("Close on a paused server took %v", d)
	}
	select {
	case err := <-addDone:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("an Add waiting when Close came returned %v; want an error matching net.ErrClosed", err)
		}
	case <-time.After(adaptertest.Wait):
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
			r := adaptertest.NewRecorder(t)
			s := adaptertest.Subscribe(t, rueidisadapter.New(c), r)
			ch := subChannel()
			adaptertest.MustAdd(t, s, ch)
			m.Close()
			if err := m.Restart(); err != nil {
				t.Fatal(err)
			}
			adaptertest.WaitResubscribed(t, r, ch, func(p string) int64 { return int64(m.Publish(ch, p)) })
			other := subChannel()
			adaptertest.MustAdd(t, s, other)
			// c's own connection broke too: publish through miniredis.
			if n := m.Publish(other, "y"); n != 1 {
				t.Fatalf("PUBLISH after Add reached %d subscribers, want 1", n)
			}
			r.Expect(t, other, "y")
		})
		t.Run("redis/"+proto, func(t *testing.T) {
			testredis.SkipShort(t, "restarts a private server and waits for resubscription")
			srv := testredis.Start(t)
			c := newClient(t, backend{addr: srv.Addr()}, edit)
			r := adaptertest.NewRecorder(t)
			s := adaptertest.Subscribe(t, rueidisadapter.New(c), r)
			ch := subChannel()
			adaptertest.MustAdd(t, s, ch)
			subPublish(t, c, ch, "first")
			r.Expect(t, ch, "first")

			srv.Restart()
			adaptertest.WaitResubscribed(t, r, ch, adaptertest.ServerPublish(srv, ch))
			adaptertest.CheckKillSubscriber(t, srv, r, ch)
			// c's own connection broke too: publish through srv.
			adaptertest.CheckAddAcrossRestart(t, srv, s, r, ch, subChannel(), srvPublish(srv))
		})
	}
}

// TestSubscribeErrorReply checks that a SUBSCRIBE the server refuses fails
// Add, and that a new connection does not try it again.
func TestSubscribeErrorReply(t *testing.T) {
	srv := testredis.Start(t)
	adaptertest.CheckErrorReply(t, srv, func(user, password string) adaptertest.Adapter {
		return subAdapter(newClient(t, backend{addr: srv.Addr()}, func(o *rueidis.ClientOption) {
			o.Username, o.Password = user, password
		}))
	})
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
	testredis.SkipShort(t, "stalls a private server for seconds")
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
			r := adaptertest.NewRecorder(t)
			s := adaptertest.Subscribe(t, rueidisadapter.New(c), r)
			ch := subChannel()
			adaptertest.MustAdd(t, s, ch)
			before := subscriberIDs(t, srv)
			if len(before) != 1 {
				t.Fatalf("Pub/Sub connections before: %q, want one", before)
			}
			if _, err := srv.Do("DEBUG", "SLEEP", "3"); err != nil {
				t.Fatalf("DEBUG SLEEP: %v", err)
			}
			adaptertest.WaitResubscribed(t, r, ch, adaptertest.ServerPublish(srv, ch))
			after := subscriberIDs(t, srv)
			if len(after) != 1 || after[0] == before[0] {
				t.Fatalf("Pub/Sub connections: %q before, %q after; want a new one", before, after)
			}
		})
	}
}
