package relock

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/relock-go/relock/driver"
)

// notifier is a Client's one subscription connection, shared by all its
// waiters. A release that hands a lock over publishes the new owner's token
// on the lock's channel; the notifier passes it to that waiter alone, so
// the others in this process do not stir.
type notifier struct {
	sub driver.Subscriber

	mu      sync.Mutex
	s       driver.Subscription // nil until a waiter needs it
	closed  bool
	chans   map[string]*channelRef
	idle    []string               // subscribed channels without waiters, oldest first
	waiters map[string]chan string // token -> hand-over payload
}

type channelRef struct {
	waiters int
	ready   chan struct{} // closed once SUBSCRIBE was confirmed, or failed
	err     error
}

// maxIdleChannels bounds the channels kept subscribed without waiters, so
// that a key contended again soon needs no new SUBSCRIBE.
const maxIdleChannels = 256

func newNotifier(s driver.Subscriber) *notifier {
	return &notifier{sub: s, chans: map[string]*channelRef{}, waiters: map[string]chan string{}}
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
		return ref.err == nil
	default:
		return false
	}
}

// join registers token as a waiter on channel and returns once the channel
// is subscribed. The returned channel receives the hand-over payload.
func (n *notifier) join(ctx context.Context, token, channel string) (<-chan string, error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, ErrClosed
	}
	if n.s == nil {
		s, err := n.sub.Subscribe(ctx, n.deliver)
		if err != nil {
			n.mu.Unlock()
			return nil, err
		}
		n.s = s
	}
	ref := n.chans[channel]
	subscribe := ref == nil
	if subscribe {
		ref = &channelRef{ready: make(chan struct{})}
		n.chans[channel] = ref
	}
	if ref.waiters == 0 {
		n.unidle(channel)
	}
	ref.waiters++
	ch := make(chan string, 1)
	n.waiters[token] = ch
	s := n.s
	n.mu.Unlock()

	if subscribe {
		ref.err = s.Add(ctx, channel)
		close(ref.ready)
	}
	select {
	case <-ref.ready:
	case <-ctx.Done():
		n.leave(ctx, token, channel)
		return nil, ctx.Err()
	}
	if ref.err != nil {
		n.leave(ctx, token, channel)
		return nil, ref.err
	}
	return ch, nil
}

// leave unregisters token. A channel left without waiters stays
// subscribed for a while; the oldest idle one is unsubscribed when too many
// are.
func (n *notifier) leave(ctx context.Context, token, channel string) {
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
			if ref.err != nil {
				delete(n.chans, channel) // a failed SUBSCRIBE: try afresh next time
			} else {
				n.idle = append(n.idle, channel)
			}
		default:
		}
		if len(n.idle) > maxIdleChannels {
			drop = n.idle[0]
			n.idle = n.idle[1:]
			delete(n.chans, drop)
		}
	}
	s := n.s
	n.mu.Unlock()
	if drop != "" && s != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = s.Remove(rctx, drop)
		cancel()
	}
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
	token, _, _ := strings.Cut(payload, ":")
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

// close ends the subscription. Waiters are gone by then (Client.Close
// ends them first).
func (n *notifier) close() error {
	n.mu.Lock()
	n.closed = true
	s := n.s
	n.s = nil
	n.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.Close()
}

// handover is a parsed hand-over announcement.
type handover struct {
	serverTime int64 // microseconds
	fence      int64
}

func parseHandover(payload string) (handover, bool) {
	parts := strings.Split(payload, ":")
	if len(parts) != 4 {
		return handover{}, false
	}
	sec, err1 := strconv.ParseInt(parts[1], 10, 64)
	usec, err2 := strconv.ParseInt(parts[2], 10, 64)
	fence, err3 := strconv.ParseInt(parts[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return handover{}, false
	}
	return handover{serverTime: sec*1e6 + usec, fence: fence}, true
}
