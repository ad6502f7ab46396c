package relock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/relock-go/relock/driver"
)

// fakeSub is a Subscriber whose calls the test can hold and fail.
type fakeSub struct {
	dialGate   chan struct{} // Subscribe waits for it (or its ctx) if not nil
	addGate    chan struct{} // Add waits for it (or its ctx) if not nil
	removeGate chan struct{} // Remove waits for it (or its ctx) if not nil

	mu        sync.Mutex
	addErr    error
	dialErr   error // the error Subscribe returned, if any
	failDials int   // the next Subscribe calls to fail, with errDial
	ops       []string
	done      chan struct{} // Done of the subscription opened last
}

var errDial = errors.New("dial refused")

// breakConn ends the subscription opened last, as a broken connection
// would.
func (f *fakeSub) breakConn() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record0("break")
	close(f.done)
}

func (f *fakeSub) record0(op string) { f.ops = append(f.ops, op) }

func (f *fakeSub) record(op string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, op)
}

func (f *fakeSub) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ops)
}

func gate(ctx context.Context, g chan struct{}) error {
	if g == nil {
		return nil
	}
	select {
	case <-g:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeSub) Subscribe(ctx context.Context, _ func(string, string)) (driver.Subscription, error) {
	if err := gate(ctx, f.dialGate); err != nil {
		f.mu.Lock()
		f.dialErr = err
		f.mu.Unlock()
		return nil, err
	}
	f.mu.Lock()
	if f.failDials > 0 {
		f.failDials--
		f.record0("dial failed")
		f.mu.Unlock()
		return nil, errDial
	}
	done := make(chan struct{})
	f.done = done
	f.record0("dial")
	f.mu.Unlock()
	return fakeSubscription{f, done}, nil
}

type fakeSubscription struct {
	f    *fakeSub
	done chan struct{}
}

func (s fakeSubscription) Done() <-chan struct{} { return s.done }

func (s fakeSubscription) Add(ctx context.Context, channels ...string) error {
	if err := gate(ctx, s.f.addGate); err != nil {
		return err
	}
	s.f.record("add:" + channels[0])
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.f.addErr
}

func (s fakeSubscription) Remove(ctx context.Context, channels ...string) error {
	if err := gate(ctx, s.f.removeGate); err != nil {
		return err
	}
	s.f.record("remove:" + channels[0])
	return nil
}

func (s fakeSubscription) Close() error {
	s.f.record("close")
	return nil
}

// TestNotifierReopensAfterBreak: when the subscription's connection
// breaks, the notifier opens a new one (after the failed dials, with
// backoff) and adds again the channels that have waiters, not the idle
// ones; the waiters registered before the break still get their
// hand-over through the new subscription.
func TestNotifierReopensAfterBreak(t *testing.T) {
	f := &fakeSub{}
	n := newNotifier(f)
	defer n.close()
	ctx := context.Background()
	ch, err := n.join(ctx, "tok-a", "chan-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.join(ctx, "tok-b", "chan-b"); err != nil {
		t.Fatal(err)
	}
	n.leave("tok-b", "chan-b") // chan-b is idle now
	f.mu.Lock()
	f.failDials = 2
	f.mu.Unlock()
	f.breakConn()
	deadline := time.Now().Add(5 * time.Second)
	for !n.subscribed("chan-a") || n.reopenedCount() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("chan-a not subscribed again 5 s after the break; calls: %v", f.log())
		}
		time.Sleep(time.Millisecond)
	}
	want := []string{"dial", "add:chan-a", "add:chan-b", "break", "close", "dial failed", "dial failed", "dial", "add:chan-a"}
	if got := f.log(); !slices.Equal(got, want) {
		t.Errorf("calls: %v, want %v", got, want)
	}
	if n.subscribed("chan-b") {
		t.Error("the idle chan-b counts as subscribed after the break")
	}
	n.deliver("chan-a", "tok-a:1:2:3")
	select {
	case p := <-ch:
		if p != "tok-a:1:2:3" {
			t.Errorf("hand-over payload %q", p)
		}
	case <-time.After(time.Second):
		t.Error("the waiter registered before the break got no hand-over after it")
	}
	// A break with no waiter left opens nothing.
	n.leave("tok-a", "chan-a")
	f.breakConn()
	for got := f.log(); got[len(got)-1] != "close"; got = f.log() {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if got := f.log(); got[len(got)-1] != "close" {
		t.Errorf("a break without waiters: calls end %v, want close and no dial", got[len(got)-2:])
	}
	// The next waiter dials afresh.
	if _, err := n.join(ctx, "tok-c", "chan-a"); err != nil {
		t.Fatal(err)
	}
	if got := f.log(); got[len(got)-1] != "add:chan-a" {
		t.Errorf("a join after a break: calls end %v", got[len(got)-3:])
	}
}

func (n *notifier) reopenedCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.reopened
}

// TestNotifierCloseDuringReopen: Close ends a reopen that keeps failing.
func TestNotifierCloseDuringReopen(t *testing.T) {
	f := &fakeSub{}
	n := newNotifier(f)
	if _, err := n.join(context.Background(), "tok-a", "chan-a"); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.failDials = 1 << 30
	f.mu.Unlock()
	f.breakConn()
	time.Sleep(20 * time.Millisecond)
	within(t, "close during reopen", func() { _ = n.close() })
}

// TestNotifierReopenStopsWhenWaitersLeave: a reopen whose dials keep
// failing stops dialling once the waiters of every stale channel have
// left (their calls ended during the outage); the next join dials again.
func TestNotifierReopenStopsWhenWaitersLeave(t *testing.T) {
	f := &fakeSub{}
	n := newNotifier(f)
	defer n.close()
	ctx := context.Background()
	if _, err := n.join(ctx, "tok-a", "chan-a"); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.failDials = 1 << 30
	f.mu.Unlock()
	f.breakConn()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(f.log(), "dial failed") {
		if time.Now().After(deadline) {
			t.Fatalf("no dial after the break: %v", f.log())
		}
		time.Sleep(time.Millisecond)
	}
	n.leave("tok-a", "chan-a")
	// The backoff after a failed dial is at most a second or so: after
	// the one under way, no more.
	deadline = time.Now().Add(10 * time.Second)
	for {
		n.mu.Lock()
		reopening := n.reopening
		n.mu.Unlock()
		if !reopening {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still reopening 10 s after the last waiter left: %v", f.log())
		}
		time.Sleep(5 * time.Millisecond)
	}
	dials := len(f.log())
	time.Sleep(300 * time.Millisecond)
	if got := f.log(); len(got) != dials {
		t.Fatalf("dials went on after the reopen stopped: %v", got[dials:])
	}
	f.mu.Lock()
	f.failDials = 0
	f.mu.Unlock()
	if _, err := n.join(ctx, "tok-b", "chan-a"); err != nil {
		t.Fatal(err)
	}
	if got := f.log(); got[len(got)-1] != "add:chan-a" {
		t.Errorf("a join after the reopen stopped: calls end %v", got[len(got)-3:])
	}
}

// within fails t if f has not returned after a generous while: it detects a
// call stuck behind another, not a slow one.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s is stuck", what)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A dial that hangs holds up only the waiters that need it: other calls
// go on, and a waiter whose context ends stops waiting for it.
func TestNotifierDialBlocksNoOne(t *testing.T) {
	f := &fakeSub{dialGate: make(chan struct{})}
	n := newNotifier(f)
	ctx, cancel := context.WithCancel(context.Background())
	joined := make(chan error, 1)
	go func() {
		_, err := n.join(ctx, "a", "ch")
		joined <- err
	}()
	eventually(t, "the dial starts", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.dial != nil
	})
	within(t, "subscribed() during a dial", func() {
		if n.subscribed("other") {
			t.Error("subscribed(other) = true before any SUBSCRIBE")
		}
	})
	within(t, "leave() during a dial", func() { n.leave("nobody", "other") })
	cancel()
	within(t, "a cancelled waiter", func() {
		if err := <-joined; !errors.Is(err, context.Canceled) {
			t.Errorf("join of a cancelled waiter = %v, want context.Canceled", err)
		}
	})
	// The dial goes on for the next waiter.
	close(f.dialGate)
	within(t, "the next waiter", func() {
		if _, err := n.join(context.Background(), "b", "ch"); err != nil {
			t.Errorf("join after the dial = %v", err)
		}
	})
	if !n.subscribed("ch") {
		t.Error("subscribed(ch) = false after a confirmed join")
	}
	n.leave("b", "ch")
	if err := n.close(); err != nil {
		t.Fatal(err)
	}
	if got := f.log(); !slices.Equal(got, []string{"dial", "add:ch", "close"}) {
		t.Errorf("calls = %q, want one dial, one SUBSCRIBE and a close", got)
	}
}

// A waiter that gives up does not fail the others waiting for the same
// SUBSCRIBE.
func TestNotifierCancelledWaiterLeavesOthersWaiting(t *testing.T) {
	f := &fakeSub{addGate: make(chan struct{})}
	n := newNotifier(f)
	defer n.close()
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := n.join(ctx, "a", "ch")
		first <- err
	}()
	second := make(chan error, 1)
	go func() {
		_, err := n.join(context.Background(), "b", "ch")
		second <- err
	}()
	eventually(t, "both waiters registered", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return len(n.waiters) == 2
	})
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled waiter's join = %v", err)
	}
	close(f.addGate)
	within(t, "the other waiter", func() {
		if err := <-second; err != nil {
			t.Errorf("the other waiter's join = %v, want the SUBSCRIBE's success", err)
		}
	})
	n.leave("b", "ch")
}

// A SUBSCRIBE that failed is undone (the server may have subscribed though
// the reply was lost) and tried afresh by the next waiter.
func TestNotifierFailedSubscribeIsUndone(t *testing.T) {
	f := &fakeSub{addErr: errors.New("connection reset")}
	n := newNotifier(f)
	if _, err := n.join(context.Background(), "a", "ch"); err == nil || err.Error() != "connection reset" {
		t.Fatalf("join with a failing SUBSCRIBE = %v", err)
	}
	if n.subscribed("ch") {
		t.Error("subscribed(ch) = true after a failed SUBSCRIBE")
	}
	f.mu.Lock()
	f.addErr = nil
	f.mu.Unlock()
	if _, err := n.join(context.Background(), "b", "ch"); err != nil {
		t.Fatalf("the next join = %v, want a fresh SUBSCRIBE", err)
	}
	n.leave("b", "ch")
	if err := n.close(); err != nil {
		t.Fatal(err)
	}
	if got := f.log(); !slices.Equal(got, []string{"dial", "add:ch", "remove:ch", "add:ch", "close"}) {
		t.Errorf("calls = %q", got)
	}
}

// Close ends a dial and a SUBSCRIBE under way and waits for them.
func TestNotifierCloseEndsPendingCalls(t *testing.T) {
	t.Run("dial", func(t *testing.T) {
		f := &fakeSub{dialGate: make(chan struct{})}
		n := newNotifier(f)
		joined := make(chan error, 1)
		go func() {
			_, err := n.join(context.Background(), "a", "ch")
			joined <- err
		}()
		eventually(t, "the dial starts", func() bool {
			n.mu.Lock()
			defer n.mu.Unlock()
			return n.dial != nil
		})
		within(t, "close during a dial", func() { _ = n.close() })
		if err := <-joined; err == nil {
			t.Error("a join whose dial close ended succeeded")
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if !errors.Is(f.dialErr, context.Canceled) {
			t.Errorf("the dial ended with %v, want its context cancelled", f.dialErr)
		}
	})
	t.Run("subscribe", func(t *testing.T) {
		f := &fakeSub{addGate: make(chan struct{})}
		n := newNotifier(f)
		joined := make(chan error, 1)
		go func() {
			_, err := n.join(context.Background(), "a", "ch")
			joined <- err
		}()
		eventually(t, "the waiter registered", func() bool {
			n.mu.Lock()
			defer n.mu.Unlock()
			return len(n.waiters) == 1
		})
		within(t, "close during a SUBSCRIBE", func() { _ = n.close() })
		if err := <-joined; err == nil {
			t.Error("a join whose SUBSCRIBE close ended succeeded")
		}
		if _, err := n.join(context.Background(), "b", "ch"); !errors.Is(err, ErrClosed) {
			t.Errorf("join after close = %v, want ErrClosed", err)
		}
	})
}

// Channels left without waiters stay subscribed up to maxIdleChannels; the
// oldest is then unsubscribed, in the background, and subscribing it again
// waits for that.
func TestNotifierIdleChannels(t *testing.T) {
	f := &fakeSub{removeGate: make(chan struct{})}
	n := newNotifier(f)
	ctx := context.Background()
	ch := func(i int) string { return fmt.Sprintf("ch%d", i) }
	for i := range maxIdleChannels + 1 {
		if _, err := n.join(ctx, "t", ch(i)); err != nil {
			t.Fatal(err)
		}
		within(t, "leave", func() { n.leave("t", ch(i)) })
	}
	if n.subscribed(ch(0)) {
		t.Error("the oldest idle channel is still counted as subscribed")
	}
	if !n.subscribed(ch(1)) || !n.subscribed(ch(maxIdleChannels)) {
		t.Error("newer idle channels were dropped")
	}
	// Join ch0 again while its UNSUBSCRIBE is held: the SUBSCRIBE waits.
	rejoined := make(chan error, 1)
	go func() {
		_, err := n.join(ctx, "u", ch(0))
		rejoined <- err
	}()
	eventually(t, "the waiter registered", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return len(n.waiters) == 1
	})
	select {
	case err := <-rejoined:
		t.Fatalf("join of a channel being unsubscribed returned (%v) before the UNSUBSCRIBE", err)
	default:
	}
	close(f.removeGate)
	within(t, "the rejoin", func() {
		if err := <-rejoined; err != nil {
			t.Errorf("rejoin = %v", err)
		}
	})
	n.leave("u", ch(0))
	if err := n.close(); err != nil {
		t.Fatal(err)
	}
	ops := f.log()
	removed := slices.Index(ops, "remove:ch0")
	if removed < 0 || slices.Index(ops[removed:], "add:ch0") < 0 {
		t.Errorf("calls %q: want ch0 unsubscribed, then subscribed again", ops)
	}
}
