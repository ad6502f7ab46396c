package valkeyadapter_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"

	valkeyadapter "github.com/relock-go/relock/adapters/valkey"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// protocols runs f with a RESP3 client (Pub/Sub on the pinned
// connection) and a RESP2 one (valkey runs Pub/Sub on a second
// connection that it opens and closes along with the pinned one).
func protocols(t *testing.T, addr string, f func(t *testing.T, c valkey.Client)) {
	for _, resp2 := range []bool{false, true} {
		name := map[bool]string{false: "resp3", true: "resp2"}[resp2]
		t.Run(name, func(t *testing.T) {
			f(t, newClient(t, addr, func(o *valkey.ClientOption) { o.AlwaysRESP2, o.DisableCache = resp2, resp2 }))
		})
	}
}

// subAdapter is the shared tests' view of a Conn on c, publishing through c.
func subAdapter(c valkey.Client) adaptertest.Adapter {
	return adaptertest.Adapter{
		Name:       "valkey",
		Subscriber: valkeyadapter.New(c),
		Publish: func(t *testing.T, channel, payload string) int64 {
			n, err := c.Do(context.Background(), c.B().Publish().Channel(channel).Message(payload).Build()).AsInt64()
			if err != nil {
				t.Fatalf("PUBLISH %s: %v", channel, err)
			}
			return n
		},
	}
}

func TestSubscribe(t *testing.T) {
	protocols(t, testredis.Addr(t), func(t *testing.T, c valkey.Client) {
		a := subAdapter(c)
		adaptertest.CheckSubscribe(t, a, adaptertest.SubscribeOptions{RemoveConfirmed: true, ClosedErr: net.ErrClosed})
		adaptertest.CheckConcurrent(t, a)
		adaptertest.CheckCancelled(t, a, adaptertest.NewRecorder(t))
	})
}

// TestSubscribeDoneOnKill: CLIENT KILL of the subscription's connection
// closes Done, Add fails after it, and Close still returns.
func TestSubscribeDoneOnKill(t *testing.T) {
	srv := testredis.Start(t)
	protocols(t, srv.Addr(), func(t *testing.T, c valkey.Client) {
		r := adaptertest.NewRecorder(t)
		s := adaptertest.Subscribe(t, valkeyadapter.New(c), r)
		ch := channel()
		adaptertest.MustAdd(t, s, ch)
		subAdapter(c).Publish(t, ch, "before")
		r.Expect(t, ch, "before")
		select {
		case <-s.Done():
			t.Fatal("Done closed before the kill")
		default:
		}
		kill := func() {
			if n, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil || n.(int64) != 1 {
				t.Fatalf("CLIENT KILL TYPE pubsub = %v, %v; want 1", n, err)
			}
		}
		kill()
		select {
		case <-s.Done():
		case <-time.After(adaptertest.Wait):
			t.Fatalf("Done not closed %v after CLIENT KILL", adaptertest.Wait)
		}
		if err := s.Add(context.Background(), channel()); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Add after Done: %v; want an error matching net.ErrClosed", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close after Done: %v", err)
		}
		r.Stop()
		// The client's own connections are fine.
		if v, err := c.Do(context.Background(), c.B().Ping().Build()).ToString(); err != nil || v != "PONG" {
			t.Fatalf("PING after the kill = %q, %v", v, err)
		}
	})
}

// TestSubscribeErrorReply: a SUBSCRIBE the server refuses fails Add with
// the server's NOPERM and leaves the subscription usable.
func TestSubscribeErrorReply(t *testing.T) {
	srv := testredis.Start(t)
	if _, err := srv.Do("ACL", "SETUSER", "limited", "on", ">pw", "~*", "resetchannels", "&allowed:*", "+@all"); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	c := newClient(t, srv.Addr(), func(o *valkey.ClientOption) { o.Username, o.Password = "limited", "pw" })
	r := adaptertest.NewRecorder(t)
	s := adaptertest.Subscribe(t, valkeyadapter.New(c), r)
	if err := s.Add(context.Background(), "denied:x"); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("Add of a denied channel: %v; want NOPERM", err)
	}
	adaptertest.MustAdd(t, s, "allowed:x")
	subAdapter(c).Publish(t, "allowed:x", "ok")
	r.Expect(t, "allowed:x", "ok")
}

// TestSubscribeMisuse: a closed Conn, a nil client, a nil handler.
func TestSubscribeMisuse(t *testing.T) {
	ctx := context.Background()
	closed := valkeyadapter.New(newClient(t, testredis.Addr(t), nil))
	_ = closed.Close()
	if _, err := closed.Subscribe(ctx, func(string, string) {}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Subscribe on a closed Conn: %v; want net.ErrClosed", err)
	}
	if _, err := valkeyadapter.New(nil).Subscribe(ctx, func(string, string) {}); !errors.Is(err, valkeyadapter.ErrNilClient) {
		t.Fatalf("Subscribe on a nil client: %v", err)
	}
	if _, err := valkeyadapter.New(newClient(t, testredis.Addr(t), nil)).Subscribe(ctx, nil); err == nil {
		t.Fatal("Subscribe with a nil handler succeeded")
	}
}

// TestSubscribeUnconfirmed checks, on a paused server, that Add waits for
// the confirmation until its context ends, and that Close then does not
// wait for the server: the connection is closed in the background, which
// Conn.Close waits for.
func TestSubscribeUnconfirmed(t *testing.T) {
	testredis.SkipShort(t, "stalls a private server for seconds")
	srv := testredis.Start(t)
	conn := valkeyadapter.New(newClient(t, srv.Addr(), nil))
	defer conn.Close()
	r := adaptertest.NewRecorder(t)
	s := adaptertest.Subscribe(t, conn, r)
	adaptertest.MustAdd(t, s, channel())
	if _, err := srv.Do("CLIENT", "PAUSE", "2000", "ALL"); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Add(ctx, channel()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Add on a paused server: %v; want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Add returned %v after its context's deadline", d)
	}
	start = time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	r.Stop()
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("Close on a paused server took %v", d)
	}
	if err := s.Add(context.Background(), channel()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Add after Close: %v; want an error matching net.ErrClosed", err)
	}
}
