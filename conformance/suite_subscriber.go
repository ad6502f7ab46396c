package conformance

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relock-go/relock/driver"
)

// subWait bounds every wait for a published message.
const subWait = 10 * time.Second

// message is one delivery to onMessage.
type message struct{ channel, payload string }

// inbox records what a subscription delivers.
type inbox struct {
	mu     sync.Mutex
	msgs   []message
	notify chan struct{} // gets a token after each delivery

	// hook, if set, runs inside onMessage after the message is recorded.
	hook func(message)
}

func newInbox() *inbox { return &inbox{notify: make(chan struct{}, 1)} }

func (in *inbox) onMessage(channel, payload string) {
	m := message{channel, payload}
	in.mu.Lock()
	in.msgs = append(in.msgs, m)
	in.mu.Unlock()
	select {
	case in.notify <- struct{}{}:
	default:
	}
	if in.hook != nil {
		in.hook(m)
	}
}

func (in *inbox) all() []message {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.msgs)
}

// waitFor waits until cond holds for what has been delivered, or fails t
// after subWait.
func (in *inbox) waitFor(t *testing.T, what string, cond func([]message) bool) []message {
	t.Helper()
	deadline := time.After(subWait)
	for {
		if msgs := in.all(); cond(msgs) {
			return msgs
		}
		select {
		case <-in.notify:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s: not delivered within %v; got %d messages: %v", what, subWait, len(in.all()), in.all())
		}
	}
}

// contains reports whether msgs holds a message with payload on channel.
func contains(msgs []message, channel, payload string) bool {
	return slices.Contains(msgs, message{channel, payload})
}

// subEnv is a Subscriber subtest: a driver with the capability and a
// Harness.Publish.
type subEnv struct {
	*env
	sub driver.Subscriber
}

func newSubEnv(t *testing.T, h Harness) *subEnv {
	t.Helper()
	e, _, sub := capable[driver.Subscriber](t, h, "Subscriber")
	if h.Publish == nil {
		t.Skip("Harness.Publish is nil")
	}
	return &subEnv{env: e, sub: sub}
}

// subscribe opens a subscription delivering to in, added to channels,
// and closed when the test ends.
func (s *subEnv) subscribe(in *inbox, channels ...string) driver.Subscription {
	s.t.Helper()
	sub, err := s.sub.Subscribe(bg(), in.onMessage)
	if err != nil {
		s.t.Fatalf("Subscribe: %v", err)
	}
	s.t.Cleanup(func() { _ = sub.Close() })
	if len(channels) > 0 {
		if err := sub.Add(bg(), channels...); err != nil {
			s.t.Fatalf("Add(%q): %v", channels, err)
		}
	}
	return sub
}

func (s *subEnv) publish(channel, payload string) {
	s.t.Helper()
	s.h.Publish(s.t, channel, payload)
}

func testSubscriber(t *testing.T, h Harness) {
	t.Run("DeliversAfterAdd", func(t *testing.T) {
		// A message published right after Add returns is delivered:
		// Add waited for the server's confirmation.
		s := newSubEnv(t, h)
		in := newInbox()
		ch := s.key("ch")
		s.subscribe(in, ch)
		s.publish(ch, "first")
		msgs := in.waitFor(t, "a message published right after Add returned", func(m []message) bool { return len(m) > 0 })
		if want := (message{ch, "first"}); msgs[0] != want {
			t.Fatalf("delivered %+v, want %+v", msgs[0], want)
		}
	})
	t.Run("NoLossInOrder", func(t *testing.T) {
		s := newSubEnv(t, h)
		in := newInbox()
		ch := s.key("ch")
		s.subscribe(in, ch)
		const n = 100
		var want []message
		for i := range n {
			p := fmt.Sprintf("m%03d", i)
			want = append(want, message{ch, p})
			s.publish(ch, p)
		}
		got := in.waitFor(t, fmt.Sprintf("%d messages", n), func(m []message) bool { return len(m) >= n })
		if !slices.Equal(got, want) {
			t.Fatalf("delivered %d messages %v\nwant %d in publishing order", len(got), got, n)
		}
	})
	t.Run("RemoveUnsubscribes", func(t *testing.T) {
		s := newSubEnv(t, h)
		in := newInbox()
		removed, kept := s.key("removed"), s.key("kept")
		sub := s.subscribe(in, removed, kept)
		if err := sub.Remove(bg(), removed); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		// Remove need not wait for the server's confirmation, Add does:
		// once a later Add on the same connection returns, the server has
		// handled the UNSUBSCRIBE sent before it.
		if err := sub.Add(bg(), s.key("barrier")); err != nil {
			t.Fatalf("Add after Remove: %v", err)
		}
		// The server sends what it publishes to one connection in order:
		// once the marker is here, a message to the removed channel,
		// published before it, would be here too.
		s.publish(removed, "after-remove")
		s.publish(kept, "marker")
		msgs := in.waitFor(t, "the marker on the channel still added", func(m []message) bool { return contains(m, kept, "marker") })
		if contains(msgs, removed, "after-remove") {
			t.Fatalf("a message published after Remove was delivered: %v", msgs)
		}
	})
	t.Run("OneCallbackAtATime", func(t *testing.T) {
		s := newSubEnv(t, h)
		in := newInbox()
		var running, most atomic.Int32
		in.hook = func(message) {
			n := running.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
			running.Add(-1)
		}
		ch := s.key("ch")
		s.subscribe(in, ch)
		const n = 30
		for i := range n {
			s.publish(ch, fmt.Sprintf("m%d", i))
		}
		in.waitFor(t, fmt.Sprintf("%d messages", n), func(m []message) bool { return len(m) >= n })
		if m := most.Load(); m > 1 {
			t.Fatalf("onMessage ran in %d goroutines at once; it must be called from one goroutine at a time", m)
		}
	})
	t.Run("CloseStopsDelivery", func(t *testing.T) {
		s := newSubEnv(t, h)
		closed, witness := newInbox(), newInbox()
		ch := s.key("ch")
		sub := s.subscribe(closed, ch)
		s.subscribe(witness, ch)
		s.publish(ch, "before")
		closed.waitFor(t, "a message before Close", func(m []message) bool { return len(m) == 1 })
		if err := sub.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		n := len(closed.all())
		const after = 10
		for i := range after {
			s.publish(ch, fmt.Sprintf("after-%d", i))
		}
		// The witness, still subscribed, gets them all; the closed
		// subscription had as long.
		witness.waitFor(t, "the messages after Close, to the open subscription", func(m []message) bool { return len(m) >= 1+after })
		time.Sleep(50 * time.Millisecond)
		if got := closed.all(); len(got) != n {
			t.Fatalf("%d messages delivered after Close returned: %v", len(got)-n, got[n:])
		}
	})
	t.Run("CloseWaitsForCallback", func(t *testing.T) {
		s := newSubEnv(t, h)
		in := newInbox()
		var running atomic.Bool
		entered, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		in.hook = func(m message) {
			if m.payload != "block" {
				return
			}
			running.Store(true)
			once.Do(func() { close(entered) })
			<-release
			running.Store(false)
		}
		ch := s.key("ch")
		sub := s.subscribe(in, ch)
		s.publish(ch, "block")
		select {
		case <-entered:
		case <-time.After(subWait):
			t.Fatal("the message was not delivered")
		}
		closing := make(chan bool, 1)
		go func() {
			_ = sub.Close()
			closing <- running.Load()
		}()
		// Close must wait for the callback, which waits for release.
		select {
		case stillRunning := <-closing:
			close(release)
			if stillRunning {
				t.Fatal("Close returned while onMessage was still running")
			}
		case <-time.After(100 * time.Millisecond):
			close(release)
			select {
			case stillRunning := <-closing:
				if stillRunning {
					t.Fatal("Close returned while onMessage was still running")
				}
			case <-time.After(subWait):
				t.Fatal("Close did not return after onMessage did")
			}
		}
	})
	t.Run("CloseEndsGoroutines", func(t *testing.T) {
		s := newSubEnv(t, h)
		ch := s.key("ch")
		// round opens a subscription, gets a message through it and
		// closes it.
		round := func(i int) {
			in := newInbox()
			sub := s.subscribe(in, ch)
			s.publish(ch, fmt.Sprintf("round-%d", i))
			in.waitFor(t, "a message", func(m []message) bool { return len(m) >= 1 })
			if err := sub.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
		// A warm-up round, so that goroutines a client starts once and
		// keeps (pools, the node clients of a cluster client) are there
		// before counting.
		round(0)
		prev := runtime.NumGoroutine()
		const rounds = 5 // a client may grow now and then (a cluster client loading its slots): only growth every round is a leak
		counts, grew := []int{prev}, 0
		for i := 1; i <= rounds; i++ {
			round(i)
			// Close promises its own goroutines are gone when it returns;
			// the grace covers others (a server in this process, say)
			// that notice the closed connection.
			deadline := time.Now().Add(time.Second)
			for runtime.NumGoroutine() > prev && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			n := runtime.NumGoroutine()
			counts = append(counts, n)
			if n > prev {
				// One round may grow the client for good (a lazily
				// created node client); every round growing is a leak.
				grew++
				prev = n
			}
		}
		if grew == rounds {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines after the warm-up and after each of %d subscriptions opened and closed: %v; each left goroutines running\n%s", rounds, counts, buf)
		}
	})
}
