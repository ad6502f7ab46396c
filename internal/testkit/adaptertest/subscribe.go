package adaptertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// Wait bounds every wait of the subscription tests for something that
// should happen at once.
const Wait = 5 * time.Second

// Message is one message a subscription delivered.
type Message struct{ Channel, Payload string }

// Recorder is an onMessage handler ([Recorder.OnMessage]) that records
// what it gets. It fails the test when it is called concurrently, or after
// [Recorder.Stop].
type Recorder struct {
	t       *testing.T
	msgs    chan Message
	running atomic.Int32
	stopped atomic.Bool
}

// NewRecorder returns a Recorder that fails t on misuse.
func NewRecorder(t *testing.T) *Recorder {
	return &Recorder{t: t, msgs: make(chan Message, 10000)}
}

// OnMessage records payload on channel; it is the handler to pass to
// [driver.Subscriber.Subscribe].
func (r *Recorder) OnMessage(channel, payload string) {
	if r.running.Add(1) != 1 {
		r.t.Errorf("onMessage(%q, %q) called while another call runs", channel, payload)
	}
	defer r.running.Add(-1)
	if r.stopped.Load() {
		r.t.Errorf("onMessage(%q, %q) called after Close returned", channel, payload)
	}
	select {
	case r.msgs <- Message{channel, payload}:
	default:
		r.t.Errorf("recorder full")
	}
}

// Stop tells r that the subscription's Close returned: a call of
// OnMessage after that fails the test.
func (r *Recorder) Stop() { r.stopped.Store(true) }

// Expect fails t unless the next message is payload on channel.
func (r *Recorder) Expect(t *testing.T, channel, payload string) {
	t.Helper()
	select {
	case m := <-r.msgs:
		if m != (Message{channel, payload}) {
			t.Fatalf("got message %q on %q; want %q on %q", m.Payload, m.Channel, payload, channel)
		}
	case <-time.After(Wait):
		t.Fatalf("no message %q on %q within %v", payload, channel, Wait)
	}
}

// Quiet fails t if a message arrives within d.
func (r *Recorder) Quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-r.msgs:
		t.Fatalf("unexpected message %q on %q", m.Payload, m.Channel)
	case <-time.After(d):
	}
}

// Channel returns a channel name no other test uses, naming the adapter:
// relock-test:<adapter>:sub:<random>.
func Channel(adapter string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "relock-test:" + adapter + ":sub:" + hex.EncodeToString(b[:])
}

// PublishFunc publishes payload on channel through a connection other than
// any subscription's and returns the number of receivers.
type PublishFunc func(t *testing.T, channel, payload string) int64

// Adapter is an adapter under test, as the shared subscription tests use
// it.
type Adapter struct {
	// Name names the adapter in channel names (see [Channel]).
	Name string
	// Subscriber opens the subscriptions: the adapter's Conn.
	Subscriber driver.Subscriber
	// Publish publishes messages for the subscriptions to get.
	Publish PublishFunc
}

// Channel returns a channel name no other test uses.
func (a Adapter) Channel() string { return Channel(a.Name) }

// Subscribe opens a subscription on sub delivering to r, closed when t
// ends (before anything whose clean-up was registered earlier, such as the
// client or pool under sub).
func Subscribe(t *testing.T, sub driver.Subscriber, r *Recorder) driver.Subscription {
	t.Helper()
	s, err := sub.Subscribe(context.Background(), r.OnMessage)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// MustAdd adds channels to s, failing t on an error or after [Wait].
func MustAdd(t *testing.T, s driver.Subscription, channels ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := s.Add(ctx, channels...); err != nil {
		t.Fatalf("Add(%q): %v", channels, err)
	}
}

// SubscribeOptions tells [CheckSubscribe] how the adapter differs.
type SubscribeOptions struct {
	// RemoveConfirmed is set when Remove returns only once the server
	// applied it, so that a PUBLISH right after it reaches no one.
	// Otherwise the test waits, up to [Wait], for the server to apply it,
	// and lets through the messages published meanwhile.
	RemoveConfirmed bool
	// ClosedErr, if not nil, is the error (by errors.Is) that Add and
	// Remove return after Close; if nil, they need only fail.
	ClosedErr error
	// BeforeClose, if not nil, runs just before the subscription's Close.
	BeforeClose func(t *testing.T)
	// AfterClose, if not nil, runs just after the subscription's Close.
	AfterClose func(t *testing.T)
	// Unsubscribed, if not nil, runs once the server has no subscriber
	// left after Close: a check that the adapter's other connections are
	// fine.
	Unsubscribed func(t *testing.T)
}

// CheckSubscribe checks a subscription of a: Add, Remove, delivery and
// Close, and the calls after Close.
func CheckSubscribe(t *testing.T, a Adapter, o SubscribeOptions) {
	ctx := context.Background()
	r := NewRecorder(t)
	s := Subscribe(t, a.Subscriber, r)
	ch1, ch2, ch3 := a.Channel(), a.Channel(), a.Channel()

	// Add returns once the server confirmed: a message published right
	// after it is delivered.
	MustAdd(t, s, ch1)
	if n := a.Publish(t, ch1, "tok:1700000000:123456:7"); n != 1 {
		t.Fatalf("PUBLISH after Add reached %d subscribers, want 1", n)
	}
	r.Expect(t, ch1, "tok:1700000000:123456:7")

	// Two channels in one Add, both confirmed by the time it returns
	// (rueidis returns on the first confirmation, by which time the
	// server subscribed both).
	MustAdd(t, s, ch2, ch3)
	if n := a.Publish(t, ch3, "to-c"); n != 1 {
		t.Fatalf("PUBLISH on the second channel of an Add reached %d subscribers, want 1", n)
	}
	a.Publish(t, ch2, "to-b")
	a.Publish(t, ch1, "to-a")
	r.Expect(t, ch3, "to-c")
	r.Expect(t, ch2, "to-b")
	r.Expect(t, ch1, "to-a")

	// Adding a channel again is harmless.
	MustAdd(t, s, ch1)
	a.Publish(t, ch1, "again")
	r.Expect(t, ch1, "again")

	// Remove: once the server applied it, nothing more arrives on ch1.
	if err := s.Remove(ctx, ch1); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if o.RemoveConfirmed {
		if n := a.Publish(t, ch1, "removed"); n != 0 {
			t.Fatalf("PUBLISH after Remove reached %d subscribers, want 0", n)
		}
		a.Publish(t, ch2, "marker")
		r.Expect(t, ch2, "marker")
	} else {
		deadline := time.Now().Add(Wait)
		late := 0
		for a.Publish(t, ch1, "late") != 0 {
			late++
			if time.Now().After(deadline) {
				t.Fatalf("PUBLISH still reaches a subscriber %v after Remove", Wait)
			}
			time.Sleep(time.Millisecond)
		}
		a.Publish(t, ch2, "marker")
		for {
			m := <-r.msgs // the marker comes, or Expect below fails
			if m == (Message{ch1, "late"}) && late > 0 {
				late--
				continue
			}
			if m != (Message{ch2, "marker"}) {
				t.Fatalf("after Remove: got %q on %q", m.Payload, m.Channel)
			}
			break
		}
		a.Publish(t, ch1, "removed")
		a.Publish(t, ch3, "still-c")
		r.Expect(t, ch3, "still-c")
	}

	// Empty calls do nothing.
	if err := s.Add(ctx); err != nil {
		t.Fatalf("Add(): %v", err)
	}
	if err := s.Remove(ctx); err != nil {
		t.Fatalf("Remove(): %v", err)
	}

	// Close ends delivery and the goroutines (goleak in the adapter's
	// TestMain checks them) and lets the connection go.
	if o.BeforeClose != nil {
		o.BeforeClose(t)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	r.Stop()
	if o.AfterClose != nil {
		o.AfterClose(t)
	}
	deadline := time.Now().Add(Wait)
	for a.Publish(t, ch3, "closed") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the server still has a subscriber %v after Close", Wait)
		}
		time.Sleep(time.Millisecond)
	}
	if o.Unsubscribed != nil {
		o.Unsubscribed(t)
	}

	// After Close.
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	checkClosedErr(t, "Add", s.Add(ctx, ch2), o.ClosedErr)
	checkClosedErr(t, "Remove", s.Remove(ctx, ch2), o.ClosedErr)
	r.Quiet(t, 50*time.Millisecond)
}

// checkClosedErr fails t unless err, returned by op after Close, is an
// error matching want, or any error if want is nil.
func checkClosedErr(t *testing.T, op string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err == nil:
		t.Fatalf("%s after Close succeeded", op)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("%s after Close: %v; want an error matching %v", op, err, want)
	}
}

// CheckOrder checks that messages arrive in the order published, across
// channels. publishAll publishes msgs in their order, through one
// connection so that the server runs them in that order.
func CheckOrder(t *testing.T, a Adapter, publishAll func(t *testing.T, msgs []Message)) {
	r := NewRecorder(t)
	s := Subscribe(t, a.Subscriber, r)
	ch1, ch2 := a.Channel(), a.Channel()
	MustAdd(t, s, ch1, ch2)
	const n = 200
	msgs := make([]Message, n)
	for i := range msgs {
		ch := ch1
		if i%3 == 0 {
			ch = ch2
		}
		msgs[i] = Message{ch, fmt.Sprint(i)}
	}
	publishAll(t, msgs)
	for _, m := range msgs {
		r.Expect(t, m.Channel, m.Payload)
	}
}

// CheckConcurrent runs Adds, Removes and messages from many goroutines at
// once on one subscription of a, for the race detector.
func CheckConcurrent(t *testing.T, a Adapter) {
	const workers, rounds = 16, 5
	channels := make([]string, workers)
	inbox := map[string]chan string{}
	for i := range channels {
		channels[i] = a.Channel()
		inbox[channels[i]] = make(chan string, 100)
	}
	var calls atomic.Int32
	s, err := a.Subscriber.Subscribe(context.Background(), func(channel, payload string) {
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
			ctx, cancel := context.WithTimeout(context.Background(), Wait)
			defer cancel()
			for round := range rounds {
				if err := s.Add(ctx, ch); err != nil {
					t.Errorf("worker %d: Add: %v", i, err)
					return
				}
				want := fmt.Sprintf("%d-%d", i, round)
				if n := a.Publish(t, ch, want); n != 1 {
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
}

// CheckCancelled checks that Subscribe, Add and Remove with a cancelled
// context fail with context.Canceled. The subscription it opens delivers
// to r (a.Publish is not used).
func CheckCancelled(t *testing.T, a Adapter, r *Recorder) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if s, err := a.Subscriber.Subscribe(cancelled, func(string, string) {}); !errors.Is(err, context.Canceled) {
		if s != nil {
			_ = s.Close()
		}
		t.Fatalf("Subscribe with a cancelled context: %v; want context.Canceled", err)
	}
	s := Subscribe(t, a.Subscriber, r)
	if err := s.Add(cancelled, a.Channel()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Add with a cancelled context: %v; want context.Canceled", err)
	}
	if err := s.Remove(cancelled, a.Channel()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Remove with a cancelled context: %v; want context.Canceled", err)
	}
}

// CheckKillEndsSubscription has srv drop the subscriber connection
// (CLIENT KILL TYPE pubsub, which must find exactly one) and checks what the
// thin contract asks of s: Done closes within [Wait], Add then fails, and
// Close returns. No driver reconnects: relock's notifier opens a new
// subscription.
func CheckKillEndsSubscription(t *testing.T, srv *testredis.Server, s driver.Subscription) {
	t.Helper()
	n, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub")
	if err != nil || n.(int64) != 1 {
		t.Fatalf("CLIENT KILL TYPE pubsub = %v, %v; want 1", n, err)
	}
	select {
	case <-s.Done():
	case <-time.After(Wait):
		t.Fatalf("Done not closed %v after the subscription's connection was killed", Wait)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := s.Add(ctx, "after-kill"); err == nil {
		t.Error("Add after Done closed succeeded; it must fail")
	}
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case <-done:
	case <-time.After(Wait):
		t.Fatalf("Close after the break did not return within %v", Wait)
	}
}

// CheckErrorReply checks that a SUBSCRIBE the server refuses fails Add
// instead of leaving it waiting, and leaves the subscription usable. It
// makes on srv a user that may
// use only the channels allowed:*, and connect returns the adapter logged
// in as that user.
func CheckErrorReply(t *testing.T, srv *testredis.Server, connect func(user, password string) Adapter) {
	if _, err := srv.Do("ACL", "SETUSER", "limited", "on", ">pw", "~*", "resetchannels", "&allowed:*", "+@all"); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	a := connect("limited", "pw")
	r := NewRecorder(t)
	s := Subscribe(t, a.Subscriber, r)
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	err := s.Add(ctx, "denied:x")
	if err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("Add of a denied channel: %v; want a NOPERM error", err)
	}
	MustAdd(t, s, "allowed:x")
	a.Publish(t, "allowed:x", "ok")
	r.Expect(t, "allowed:x", "ok")
	select {
	case <-s.Done():
		t.Error("a refused SUBSCRIBE ended the subscription")
	default:
	}
}

// NextMessage returns the next message r got, failing t after [Wait].
func NextMessage(t *testing.T, r *Recorder) Message {
	t.Helper()
	select {
	case m := <-r.msgs:
		return m
	case <-time.After(Wait):
		t.Fatalf("no message within %v", Wait)
		return Message{}
	}
}
