package radixadapter_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mediocregopher/radix/v4"

	radixadapter "github.com/relock-go/relock/adapters/radix"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// publish publishes payload on channel at addr and returns the number of
// receivers.
func publish(t *testing.T, addr, channel, payload string) int64 {
	t.Helper()
	n, err := testredis.Do(addr, "PUBLISH", channel, payload)
	if err != nil {
		t.Fatalf("PUBLISH %s: %v", channel, err)
	}
	return n.(int64)
}

// subAdapter returns the shared tests' view of a Conn on a pool to addr.
func subAdapter(t *testing.T, addr string, opts ...radixadapter.Option) adaptertest.Adapter {
	return adaptertest.Adapter{
		Name:       "radix",
		Subscriber: radixadapter.New(newPool(t, addr), opts...),
		Publish:    func(t *testing.T, channel, payload string) int64 { return publish(t, addr, channel, payload) },
	}
}

func TestSubscribe(t *testing.T) {
	addr := testredis.Addr(t)
	adaptertest.CheckSubscribe(t, subAdapter(t, addr), adaptertest.SubscribeOptions{})
}

func TestSubscribeOrder(t *testing.T) {
	addr := testredis.Addr(t)
	adaptertest.CheckOrder(t, subAdapter(t, addr), func(t *testing.T, msgs []adaptertest.Message) {
		for _, m := range msgs {
			publish(t, addr, m.Channel, m.Payload)
		}
	})
}

func TestSubscribeConcurrent(t *testing.T) {
	adaptertest.CheckConcurrent(t, subAdapter(t, testredis.Addr(t)))
}

func TestSubscribeCancelled(t *testing.T) {
	adaptertest.CheckCancelled(t, subAdapter(t, testredis.Addr(t)), adaptertest.NewRecorder(t))
}

// TestSubscribeDoneOnKill checks that a subscription whose connection the
// server drops (CLIENT KILL) closes Done, and fails Add after that.
func TestSubscribeDoneOnKill(t *testing.T) {
	srv := testredis.Start(t)
	a := subAdapter(t, srv.Addr())
	r := adaptertest.NewRecorder(t)
	s := adaptertest.Subscribe(t, a.Subscriber, r)
	ch := a.Channel()
	adaptertest.MustAdd(t, s, ch)
	a.Publish(t, ch, "before")
	r.Expect(t, ch, "before")
	select {
	case <-s.Done():
		t.Fatal("Done closed on a healthy subscription")
	default:
	}
	if n, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil || n.(int64) != 1 {
		t.Fatalf("CLIENT KILL TYPE pubsub = %v, %v; want 1", n, err)
	}
	select {
	case <-s.Done():
	case <-time.After(adaptertest.Wait):
		t.Fatal("Done still open after CLIENT KILL")
	}
	if err := s.Add(context.Background(), a.Channel()); err == nil {
		t.Fatal("Add after the connection broke succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after Done: %v", err)
	}
}

// TestSubscribeErrorReply checks that a SUBSCRIBE the server refuses fails
// Add with the server's error, and leaves the subscription usable; and
// that the subscriptions dial with the dialer given by WithDialer.
func TestSubscribeErrorReply(t *testing.T) {
	srv := testredis.Start(t)
	if _, err := srv.Do("ACL", "SETUSER", "limited", "on", ">pw", "~*", "resetchannels", "&allowed:*", "+@all"); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	a := subAdapter(t, srv.Addr(), radixadapter.WithDialer(radix.Dialer{AuthUser: "limited", AuthPass: "pw"}))
	r := adaptertest.NewRecorder(t)
	s := adaptertest.Subscribe(t, a.Subscriber, r)
	ctx, cancel := context.WithTimeout(context.Background(), adaptertest.Wait)
	defer cancel()
	if err := s.Add(ctx, "denied:x"); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("Add of a denied channel: %v; want a NOPERM error", err)
	}
	adaptertest.MustAdd(t, s, "allowed:x")
	a.Publish(t, "allowed:x", "ok")
	r.Expect(t, "allowed:x", "ok")
}

func TestSubscribeMisuse(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t, testredis.Addr(t))
	closed := radixadapter.New(pool)
	_ = closed.Close()
	if _, err := closed.Subscribe(ctx, func(string, string) {}); !errors.Is(err, radixadapter.ErrClosed) {
		t.Fatalf("Subscribe on a closed Conn: %v; want ErrClosed", err)
	}
	if _, err := radixadapter.New(nil).Subscribe(ctx, func(string, string) {}); !errors.Is(err, radixadapter.ErrNilClient) {
		t.Fatalf("Subscribe on a nil client: %v; want ErrNilClient", err)
	}
	if _, err := radixadapter.New(pool).Subscribe(ctx, nil); err == nil {
		t.Fatal("Subscribe with a nil handler succeeded")
	}
}
