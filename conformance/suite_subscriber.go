package conformance

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
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

// subEnv is a Subscriber subtest: a driver with the capability, and a way
// to publish.
type subEnv struct {
	*env
	sub     driver.Subscriber
	publish func(channel, payload string)
	// burst publishes payloads on channel as fast as the backend can, or
	// is nil.
	burst func(channel string, payloads []string)
}

// burstScript publishes ARGV on the channel KEYS[1], in one script call:
// a burst no client-side pacing slows down. The channel goes as a key, so
// that a cluster client sends every burst to one node: PUBLISH on
// different nodes reaches a subscriber in no set order.
const burstScript = "for i = 1, #ARGV do redis.call('PUBLISH', KEYS[1], ARGV[i]) end return #ARGV"

// newSubEnv returns a Subscriber subtest. It publishes through
// Harness.Publish, or, without it, through the driver itself: PUBLISH in a
// script (driver.Scripter) or in a transaction (driver.Watcher), on a
// connection other than the subscription's.
func newSubEnv(t *testing.T, h Harness) *subEnv {
	t.Helper()
	e, _, sub := capable[driver.Subscriber](t, h, "Subscriber")
	s := &subEnv{env: e, sub: sub}
	pub := e.conn()
	sc, scripts := pub.(driver.Scripter)
	w, watches := pub.(driver.Watcher)
	switch {
	case h.Publish != nil:
		s.publish = func(channel, payload string) { h.Publish(t, channel, payload) }
	case scripts:
		s.publish = func(channel, payload string) {
			if _, err := sc.Eval(bg(), "return redis.call('PUBLISH', KEYS[1], ARGV[1])", []string{channel}, payload); err != nil {
				t.Fatalf("PUBLISH through the driver's Eval: %v", err)
			}
		}
	case watches:
		s.publish = func(channel, payload string) {
			err := w.Watch(bg(), []string{e.key("publish")}, func(tx driver.Tx) error {
				_, err := tx.Exec(bg(), []string{"PUBLISH", channel, payload})
				return err
			})
			if err != nil {
				t.Fatalf("PUBLISH through the driver's Tx.Exec: %v", err)
			}
		}
	default:
		t.Skip("Harness.Publish is nil, and the driver has neither scripts nor transactions to publish with")
	}
	if scripts {
		s.burst = func(channel string, payloads []string) {
			if _, err := sc.Eval(bg(), burstScript, []string{channel}, payloads...); err != nil {
				t.Fatalf("a burst of PUBLISH in one script: %v", err)
			}
		}
	}
	return s
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
	t.Run("Burst", func(t *testing.T) {
		// Many messages at once, faster than one at a time: none lost,
		// none out of order, however the client buffers them.
		s := newSubEnv(t, h)
		in := newInbox()
		ch := s.key("ch")
		s.subscribe(in, ch)
		const n = 2000
		var want []message
		var payloads []string
		for i := range n {
			p := fmt.Sprintf("b%04d", i)
			want = append(want, message{ch, p})
			payloads = append(payloads, p)
		}
		if s.burst != nil {
			for i := 0; i < n; i += 500 {
				s.burst(ch, payloads[i:i+500])
			}
		} else {
			var wg sync.WaitGroup
			wg.Go(func() {
				for _, p := range payloads {
					s.publish(ch, p)
				}
			})
			wg.Wait()
		}
		got := in.waitFor(t, fmt.Sprintf("a burst of %d messages", n), func(m []message) bool { return len(m) >= n })
		if !slices.Equal(got, want) {
			for i := range min(len(got), n) {
				if got[i] != want[i] {
					t.Fatalf("a burst of %d messages: message %d is %+v, want %+v (lost or reordered)", n, i, got[i], want[i])
				}
			}
			t.Fatalf("a burst of %d messages: %d delivered", n, len(got))
		}
	})
	t.Run("Isolated", func(t *testing.T) {
		// Each subscription gets the messages of its own channels, in
		// its own callback, and no other's.
		s := newSubEnv(t, h)
		a, b := newInbox(), newInbox()
		cha, chb := s.key("a"), s.key("b")
		s.subscribe(a, cha)
		s.subscribe(b, chb)
		const n = 20
		for i := range n {
			s.publish(cha, fmt.Sprintf("a%d", i))
			s.publish(chb, fmt.Sprintf("b%d", i))
		}
		for _, x := range []struct {
			in     *inbox
			ch, to string
		}{{a, cha, "a"}, {b, chb, "b"}} {
			got := x.in.waitFor(t, "the messages of subscription "+x.to, func(m []message) bool { return len(m) >= n })
			for _, m := range got {
				if m.channel != x.ch || !strings.HasPrefix(m.payload, x.to) {
					t.Fatalf("subscription %s, added to %q only, got %+v: a message of another subscription", x.to, x.ch, m)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
		if la, lb := len(a.all()), len(b.all()); la != n || lb != n {
			t.Fatalf("subscriptions got %d and %d messages, want %d each", la, lb, n)
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
		// before the snapshot.
		round(0)
		before := goroutines()
		const rounds = 3
		for i := 1; i <= rounds; i++ {
			round(i)
		}
		// Close promises its own goroutines are gone when it returns;
		// the grace covers others (a server in this process, say) that
		// notice the closed connection. Goroutines are told apart by
		// their stacks, as goleak does: one that every round left behind,
		// started at the same place, is a leak, whatever else comes and
		// goes in the process.
		deadline := time.Now().Add(time.Second)
		for {
			leaks := leaked(before, goroutines(), rounds)
			if len(leaks) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("each of %d subscriptions opened and closed left a goroutine behind:\n%s", rounds, strings.Join(leaks, "\n\n"))
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// goroutine is one goroutine of a stack dump.
type goroutine struct {
	id    string
	where string // its current function and where it was created
	stack string
}

// goroutines lists the goroutines of the process, by id.
func goroutines() map[string]goroutine {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]goroutine{}
	for _, block := range strings.Split(string(buf), "\n\n") {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		if len(lines) < 2 || !strings.HasPrefix(lines[0], "goroutine ") {
			continue
		}
		id, _, _ := strings.Cut(strings.TrimPrefix(lines[0], "goroutine "), " ")
		fn, _, _ := strings.Cut(lines[1], "(")
		where := fn
		for _, l := range lines {
			if c, ok := strings.CutPrefix(l, "created by "); ok {
				c, _, _ = strings.Cut(c, " in goroutine")
				where += " created by " + c
			}
		}
		out[id] = goroutine{id: id, where: where, stack: block}
	}
	return out
}

// leaked returns the stacks of goroutines in now but not in before that
// share one place of creation with at least n-1 others: one left behind
// by each of n rounds.
func leaked(before, now map[string]goroutine, n int) []string {
	byWhere := map[string][]goroutine{}
	for id, g := range now {
		if _, old := before[id]; !old {
			byWhere[g.where] = append(byWhere[g.where], g)
		}
	}
	var out []string
	for where, gs := range byWhere {
		if len(gs) >= n {
			out = append(out, fmt.Sprintf("%d goroutines at %s, the first:\n%s", len(gs), where, gs[0].stack))
		}
	}
	slices.Sort(out)
	return out
}
