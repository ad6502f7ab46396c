package relock

import (
	"context"
	"sync"
	"time"

	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/backoff"
)

// notifier is a Client's one subscription connection, shared by all its
// waiters. A release that hands a lock over publishes the new owner's token
// on the lock's channel; the notifier passes it to that waiter alone, so
// the others in this process do not stir.
//
// No network call runs under mu: the dial, SUBSCRIBE and UNSUBSCRIBE run
// in goroutines of their own (tracked by wg, bounded by ctx, which close
// ends), so an Obtain never waits behind another key's subscription.
//
// The notifier, not the driver, survives a broken connection: when a
// subscription's Done closes, the channels without waiters are forgotten,
// those with waiters are marked stale, and one goroutine (reopen) opens a
// new subscription with backoff and adds them again. Waiters keep waiting
// meanwhile: they renew their place in the queue several times a second
// and that renewal finds a lock handed to them, so a hand-over announced
// while no subscription was open costs at most one renewal interval.
type notifier struct {
	sub    driver.Subscriber
	ctx    context.Context // ends on close
	cancel context.CancelFunc
	wg     sync.WaitGroup // dial, SUBSCRIBE and UNSUBSCRIBE goroutines

	mu        sync.Mutex
	s         driver.Subscription // nil until a waiter needs it
	dial      *dialing            // the dial in progress, if any
	closed    bool
	chans     map[string]*channelRef
	idle      []string                 // subscribed channels without waiters, oldest first
	removing  map[string]chan struct{} // channel -> closed when its UNSUBSCRIBE is done
	waiters   map[string]chan string   // token -> hand-over payload
	reopening bool                     // reopen is running
	reopened  int                      // subscriptions opened after a break (for tests)
}

type dialing struct {
	done chan struct{}
	err  error // set before done is closed
}

type channelRef struct {
	waiters int
	ready   chan struct{} // closed once SUBSCRIBE was confirmed, or failed
	err     error         // set before ready is closed
	stale   bool          // subscribed on a connection that broke; reopen adds it again
}

// maxIdleChannels bounds the channels kept subscribed without waiters, so
// that a key contended again soon needs no new SUBSCRIBE.
const maxIdleChannels = 256

// subscribeTimeout bounds one dial, SUBSCRIBE or UNSUBSCRIBE of the
// notifier. Waiters stop waiting for it when their own context ends.
const subscribeTimeout = 10 * time.Second

func newNotifier(s driver.Subscriber) *notifier {
	ctx, cancel := context.WithCancel(context.Background())
	return &notifier{
		sub: s, ctx: ctx, cancel: cancel,
		chans:    map[string]*channelRef{},
		removing: map[string]chan struct{}{},
		waiters:  map[string]chan string{},
	}
}

// subscribed reports whether channel is already confirmed subscribed, so a
// waiter may join the queue on its first try.
func (n *notifier) subscribed(channel string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	ref := n.chans[channel]
	if ref == nil {
		return false
	}
	select {
	case <-ref.ready:
		return ref.err == nil && !ref.stale
	default:
		return false
	}
}

// join registers token as a waiter on channel and returns once the channel
// is subscribed. The returned channel receives the hand-over payload. A
// waiter that gives up (its ctx ends) leaves the dial or SUBSCRIBE running
// for the others.
func (n *notifier) join(ctx context.Context, token, channel string) (<-chan string, error) {
	s, err := n.connection(ctx)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, ErrClosed
	}
	ref := n.chans[channel]
	if ref == nil {
		ref = &channelRef{ready: make(chan struct{})}
		n.chans[channel] = ref
		after := n.removing[channel]
		n.wg.Add(1)
		go n.add(s, channel, ref, after)
	}
	if ref.waiters == 0 {
		n.unidle(channel)
	}
	ref.waiters++
	ch := make(chan string, 1)
	n.waiters[token] = ch
	n.mu.Unlock()

	select {
	case <-ref.ready:
	case <-ctx.Done():
		n.leave(token, channel)
		return nil, ctx.Err()
	}
	if ref.err != nil {
		n.leave(token, channel)
		return nil, ref.err
	}
	return ch, nil
}

// connection returns the subscription, dialling it first if need be. A
// failed dial is tried afresh by the next waiter.
func (n *notifier) connection(ctx context.Context) (driver.Subscription, error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, ErrClosed
	}
	if s := n.s; s != nil {
		n.mu.Unlock()
		return s, nil
	}
	d := n.dial
	if d == nil {
		d = &dialing{done: make(chan struct{})}
		n.dial = d
		n.wg.Add(1)
		go n.connect(d)
	}
	n.mu.Unlock()
	select {
	case <-d.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if d.err != nil {
		return nil, d.err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.s == nil {
		return nil, ErrClosed
	}
	return n.s, nil
}

// connect dials the subscription connection.
func (n *notifier) connect(d *dialing) {
	defer n.wg.Done()
	ctx, cancel := context.WithTimeout(n.ctx, subscribeTimeout)
	s, err := n.sub.Subscribe(ctx, n.deliver)
	cancel()
	n.mu.Lock()
	n.dial = nil
	switch {
	case err != nil:
		d.err = err
	case n.closed:
		d.err = ErrClosed
	default:
		n.s = s
		n.wg.Add(1)
		go n.watch(s)
	}
	closed := n.closed
	n.mu.Unlock()
	if err == nil && closed {
		_ = s.Close() // close came first and found nothing to close
	}
	close(d.done)
}

// add subscribes to channel for ref, once an UNSUBSCRIBE of the same
// channel still under way (after) is done. A failed SUBSCRIBE is undone,
// for the server may have subscribed although the reply was lost.
func (n *notifier) add(s driver.Subscription, channel string, ref *channelRef, after <-chan struct{}) {
	defer n.wg.Done()
	if after != nil {
		select {
		case <-after:
		case <-n.ctx.Done():
		}
	}
	ctx, cancel := context.WithTimeout(n.ctx, subscribeTimeout)
	err := s.Add(ctx, channel)
	cancel()
	if err != nil && n.ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(n.ctx, subscribeTimeout)
		_ = s.Remove(rctx, channel)
		cancel()
	}
	n.mu.Lock()
	ref.err = err
	close(ref.ready)
	var drop string
	switch {
	case n.chans[channel] != ref:
		// The connection broke meanwhile and the channel, then without
		// waiters, was forgotten.
	case ref.stale:
		if ref.waiters == 0 {
			delete(n.chans, channel)
		}
	case ref.waiters == 0:
		drop = n.settle(channel, ref)
	}
	n.mu.Unlock()
	n.remove(drop)
}

// leave unregisters token. A channel left without waiters stays
// subscribed for a while; the oldest idle one is unsubscribed when too many
// are.
func (n *notifier) leave(token, channel string) {
	n.mu.Lock()
	delete(n.waiters, token)
	ref := n.chans[channel]
	if ref == nil {
		n.mu.Unlock()
		return
	}
	ref.waiters--
	var drop string
	if ref.waiters == 0 {
		select {
		case <-ref.ready:
			if ref.stale {
				delete(n.chans, channel) // not subscribed on any live connection
			} else {
				drop = n.settle(channel, ref)
			}
		default: // add settles it when SUBSCRIBE is done
		}
	}
	n.mu.Unlock()
	n.remove(drop)
}

// settle files a channel left without waiters after its SUBSCRIBE ended:
// a failed one is forgotten, to be tried afresh; a confirmed one goes on
// the idle list. It returns the channel to unsubscribe if the list grew
// too long, already taken out of chans and marked as being removed. n.mu
// must be held.
func (n *notifier) settle(channel string, ref *channelRef) (drop string) {
	if ref.err != nil {
		delete(n.chans, channel)
		return ""
	}
	n.idle = append(n.idle, channel)
	if len(n.idle) <= maxIdleChannels || n.closed {
		return ""
	}
	drop = n.idle[0]
	n.idle = n.idle[1:]
	delete(n.chans, drop)
	if _, ok := n.removing[drop]; ok {
		// Cannot happen: a channel's new SUBSCRIBE, and so its next
		// removal, waits for the UNSUBSCRIBE under way.
		return ""
	}
	n.removing[drop] = make(chan struct{})
	return drop
}

// remove unsubscribes from channel in the background; a new SUBSCRIBE of
// it waits until that is done.
func (n *notifier) remove(channel string) {
	if channel == "" {
		return
	}
	n.mu.Lock()
	s, done := n.s, n.removing[channel]
	if s == nil || n.closed {
		delete(n.removing, channel)
		n.mu.Unlock()
		close(done)
		return
	}
	n.wg.Add(1)
	n.mu.Unlock()
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.ctx, subscribeTimeout)
		_ = s.Remove(ctx, channel)
		cancel()
		n.mu.Lock()
		delete(n.removing, channel)
		n.mu.Unlock()
		close(done)
	}()
}

// watch waits for s to end. When it broke (rather than the notifier
// closing), it forgets s and its channels without waiters, marks the
// channels with waiters stale and starts reopen.
func (n *notifier) watch(s driver.Subscription) {
	defer n.wg.Done()
	select {
	case <-n.ctx.Done():
		return
	case <-s.Done():
	}
	n.mu.Lock()
	if n.closed || n.s != s {
		n.mu.Unlock()
		return
	}
	n.s = nil
	stale := false
	for ch, ref := range n.chans {
		if ref.waiters == 0 {
			delete(n.chans, ch)
			continue
		}
		ref.stale, stale = true, true
	}
	n.idle = nil
	start := stale && !n.reopening
	if start {
		n.reopening = true
		n.wg.Add(1)
	}
	n.mu.Unlock()
	_ = s.Close()
	if start {
		go n.reopen()
	}
}

// reopen opens a new subscription after a break, with backoff between
// failed tries, and adds every stale channel again, until none is left
// (their waiters left, or they were added) or the notifier closes.
func (n *notifier) reopen() {
	defer n.wg.Done()
	var b backoff.Backoff
	first := true
	for {
		if !first && !b.Wait(n.ctx.Done()) {
			break
		}
		first = false
		s, err := n.connection(n.ctx)
		if err != nil {
			if n.ctx.Err() != nil || len(n.staleChannels()) == 0 {
				// Closing, or every waiter of a stale channel has left:
				// nothing to reopen for (a later join dials again).
				break
			}
			continue
		}
		for _, ch := range n.staleChannels() {
			ctx, cancel := context.WithTimeout(n.ctx, subscribeTimeout)
			err := s.Add(ctx, ch)
			cancel()
			if err != nil {
				break
			}
			n.mu.Lock()
			if ref := n.chans[ch]; ref != nil && n.s == s {
				ref.stale = false
			}
			n.mu.Unlock()
		}
		n.mu.Lock()
		done := n.closed || len(n.staleLocked()) == 0
		if done {
			n.reopening = false
			n.reopened++
		}
		n.mu.Unlock()
		if done {
			return
		}
	}
	n.mu.Lock()
	n.reopening = false
	n.mu.Unlock()
}

// staleChannels returns the channels to add again.
func (n *notifier) staleChannels() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.staleLocked()
}

// staleLocked returns the stale channels that still have waiters, in no
// particular order. n.mu must be held.
func (n *notifier) staleLocked() []string {
	var chans []string
	for ch, ref := range n.chans {
		if ref.stale && ref.waiters > 0 {
			chans = append(chans, ch)
		}
	}
	return chans
}

// unidle takes channel off the idle list. n.mu must be held.
func (n *notifier) unidle(channel string) {
	for i, c := range n.idle {
		if c == channel {
			n.idle = append(n.idle[:i], n.idle[i+1:]...)
			return
		}
	}
}

// deliver is the subscription's message handler: "token:sec:usec:fence".
func (n *notifier) deliver(_ string, payload string) {
	token := handoverToken(payload)
	n.mu.Lock()
	ch := n.waiters[token]
	n.mu.Unlock()
	if ch != nil {
		select {
		case ch <- payload:
		default:
		}
	}
}

// close ends the subscription and every goroutine of the notifier.
// Waiters are gone by then (Client.Close ends them first).
func (n *notifier) close() error {
	n.mu.Lock()
	n.closed = true
	s := n.s
	n.s = nil
	n.mu.Unlock()
	n.cancel() // ends a dial, SUBSCRIBE or UNSUBSCRIBE under way
	n.wg.Wait()
	if s == nil {
		return nil
	}
	return s.Close()
}
