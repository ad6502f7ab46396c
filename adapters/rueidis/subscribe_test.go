package rueidisadapter_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	rueidisadapter "github.com/relock-go/relock/adapters/rueidis"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// The subscription tests that all adapters share are in
// internal/testkit/adaptertest; this file runs them on rueidis clients and adds the
// tests of rueidis's own ways.

// subProtocols runs f, on the shared server, with a RESP3 client (the rueidis
// default: Pub/Sub on the pinned connection) and a RESP2 one (Pub/Sub on a
// second connection that rueidis opens for it).
func subProtocols(t *testing.T, f func(t *testing.T, b backend, c rueidis.Client)) {
	onRedis(t, func(t *testing.T, b backend) {
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
	c := newClient(t, backend{addr: testredis.Addr(t)}, nil)
	adaptertest.CheckCancelled(t, subAdapter(c), adaptertest.NewRecorder(t))
}

// TestSubscribeUnconfirmed checks, on a paused server, that Add waits for
// the confirmation until its context ends, and that Close then does not
// wait for the server: the connection is closed in the background.
func TestSubscribeUnconfirmed(t *testing.T) {
	testredis.SkipShort(t, "stalls a private server for seconds")
	srv := testredis.Start(t)
	c := newClient(t, backend{addr: srv.Addr()}, nil)
	conn := rueidisadapter.New(c)
	defer conn.Close() // waits for the connection closed in the background
	r := adaptertest.NewRecorder(t)
	s, err := conn.Subscribe(context.Background(), r.OnMessage)
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
	if d := time.Since(start); d > 500*time.Millisecond {
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
	b := backend{addr: testredis.Addr(t)}
	c := newClient(t, b, nil)
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
	gone, err := rueidis.NewClient(b.options())
	if err != nil {
		t.Fatal(err)
	}
	gone.Close()
	if s, err := rueidisadapter.New(gone).Subscribe(ctx, func(string, string) {}); err == nil {
		_ = s.Close()
		t.Fatal("Subscribe on a closed rueidis client succeeded")
	}
}

// TestSubscribeEnds checks that the subscription does not outlive its
// connection: when the server drops it (CLIENT KILL TYPE pubsub), or stops
// answering (DEBUG SLEEP, which rueidis's health check notices), Done
// closes, Add fails, and Close still returns at once. relock, not the
// adapter, then opens a new subscription.
func TestSubscribeEnds(t *testing.T) {
	for _, resp2 := range []bool{false, true} {
		proto := "resp3"
		if resp2 {
			proto = "resp2"
		}
		for _, fault := range []string{"killed", "silent"} {
			t.Run(proto+"/"+fault, func(t *testing.T) {
				if fault == "silent" {
					testredis.SkipShort(t, "stalls a private server for seconds")
				}
				srv := testredis.Start(t)
				c := newClient(t, backend{addr: srv.Addr()}, func(o *rueidis.ClientOption) {
					o.ConnWriteTimeout = 500 * time.Millisecond // rueidis pings an idle connection every second
					if resp2 {
						o.AlwaysRESP2 = true
						o.DisableCache = true
					}
				})
				conn := rueidisadapter.New(c)
				defer conn.Close()
				r := adaptertest.NewRecorder(t)
				s := adaptertest.Subscribe(t, conn, r)
				ch := subChannel()
				adaptertest.MustAdd(t, s, ch)
				subPublish(t, c, ch, "before")
				r.Expect(t, ch, "before")
				select {
				case <-s.Done():
					t.Fatal("Done closed on a live connection")
				default:
				}

				if fault == "killed" {
					if n, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil || n.(int64) != 1 {
						t.Fatalf("CLIENT KILL TYPE pubsub = %v, %v; want 1", n, err)
					}
				} else if _, err := srv.Do("DEBUG", "SLEEP", "3"); err != nil {
					t.Fatalf("DEBUG SLEEP: %v", err)
				}
				select {
				case <-s.Done():
				case <-time.After(adaptertest.Wait):
					t.Fatalf("Done still open %v after the connection was %s", adaptertest.Wait, fault)
				}
				ctx, cancel := context.WithTimeout(context.Background(), adaptertest.Wait)
				defer cancel()
				if err := s.Add(ctx, subChannel()); !errors.Is(err, net.ErrClosed) {
					t.Fatalf("Add after Done: %v; want an error matching net.ErrClosed", err)
				}
				start := time.Now()
				if err := s.Close(); err != nil {
					t.Fatalf("Close after Done: %v", err)
				}
				r.Stop()
				if d := time.Since(start); d > time.Second {
					t.Fatalf("Close after Done took %v", d)
				}
				if fault == "killed" {
					// The server has no subscriber left.
					if n, err := srv.Do("PUBLISH", ch, "after"); err != nil || n != int64(0) {
						t.Fatalf("PUBLISH after the kill reached %d subscribers, want 0", n)
					}
				}
			})
		}
	}
}

// TestSubscribeErrorReply checks that a SUBSCRIBE the server refuses
// (NOPERM) fails Add with the server's error and leaves the subscription
// open and usable.
func TestSubscribeErrorReply(t *testing.T) {
	srv := testredis.Start(t)
	if _, err := srv.Do("ACL", "SETUSER", "limited", "on", ">pw", "~*", "resetchannels", "&allowed:*", "+@all"); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	c := newClient(t, backend{addr: srv.Addr()}, func(o *rueidis.ClientOption) { o.Username, o.Password = "limited", "pw" })
	r := adaptertest.NewRecorder(t)
	s := adaptertest.Subscribe(t, rueidisadapter.New(c), r)
	ctx, cancel := context.WithTimeout(context.Background(), adaptertest.Wait)
	defer cancel()
	err := s.Add(ctx, "denied:x")
	var re *rueidis.RedisError
	if !errors.Is(err, driver.ErrNoPermission) || !errors.As(err, &re) || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("Add of a denied channel: %v; want the server's NOPERM, matching driver.ErrNoPermission", err)
	}
	select {
	case <-s.Done():
		t.Fatal("an error reply ended the subscription")
	default:
	}
	adaptertest.MustAdd(t, s, "allowed:x")
	subPublish(t, c, "allowed:x", "ok")
	r.Expect(t, "allowed:x", "ok")
}
