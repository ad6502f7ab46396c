package goredis

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/backoff"
)

var _ driver.Subscriber = (*Conn)(nil)

// Subscribe opens a go-redis PubSub (one connection of its own, which
// go-redis re-dials and re-subscribes after a failure) and delivers its
// messages to onMessage from one goroutine, which Close ends. Subscribe
// itself sends nothing: the connection is made by the first Add.
//
// go-redis writes SUBSCRIBE and UNSUBSCRIBE within its WriteTimeout, and
// dials and says HELLO within its DialTimeout and ReadTimeout, whatever the
// context says; so Add and Remove run them in a goroutine of their own and
// return when their context ends, as guarded calls do. Close waits for
// that goroutine, and for the receiving one, which go-redis may hold for up
// to those timeouts while it reconnects to a server that does not answer.
func (c *Conn) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	rdb, err := c.client()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &subscription{
		ctx:       sctx,
		cancel:    cancel,
		ps:        rdb.Subscribe(ctx),
		onMessage: onMessage,
		pending:   map[string][]*pendingAdd{},
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	go s.receive()
	return s, nil
}

type subscription struct {
	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	calls     sync.WaitGroup // the goroutines of Add and Remove
	ps        *redis.PubSub
	onMessage func(channel, payload string)

	mu      sync.Mutex
	pending map[string][]*pendingAdd // channel -> Adds awaiting confirmation
	closed  atomic.Bool
	stop    chan struct{}
	done    chan struct{}
}

var errSubscriptionClosed = errors.New("goredis: subscription is closed")

func (s *subscription) receive() {
	defer close(s.done)
	var wait backoff.Backoff
	for {
		// Each read is cut after receivePoll, so that Close need not
		// wait for go-redis's own timeouts; a quiet connection is kept
		// (ReceiveTimeout does not count a timeout as a broken
		// connection). The context's deadline also bounds a reconnection
		// on a client with ContextTimeoutEnabled.
		ctx, cancel := context.WithTimeout(s.ctx, receivePoll)
		msg, err := s.ps.ReceiveTimeout(ctx, receivePoll)
		cancel()
		if err != nil {
			if s.closed.Load() || errors.Is(err, redis.ErrClosed) || s.ctx.Err() != nil {
				return // we, or the user's client, closed it
			}
			if isTimeout(err) {
				continue // nothing arrived, or a reconnection was cut short
			}
			var refused redis.Error
			if errors.As(err, &refused) {
				// The server refused a command (a SUBSCRIBE without
				// permission, say): fail the Adds waiting for it.
				s.refuse(translate(err))
				continue
			}
			// go-redis dials again, and subscribes again, on the next
			// Receive; wait a little so a dead server is not hammered.
			if !wait.Wait(s.stop) {
				return
			}
			continue
		}
		wait.Reset()
		switch m := msg.(type) {
		case *redis.Message:
			s.onMessage(m.Channel, m.Payload)
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				s.confirm(m.Channel)
			}
		}
	}
}

// receivePoll bounds each read of the subscription connection.
const receivePoll = time.Second

// isTimeout reports whether err is a read or dial that ran out of time.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

func (s *subscription) confirm(channel string) {
	s.mu.Lock()
	waiting := s.pending[channel]
	delete(s.pending, channel)
	s.mu.Unlock()
	for _, w := range waiting {
		close(w.done)
	}
}

// refuse fails every Add still waiting with err.
// The refused channels are also taken out of the PubSub, so that a new
// connection does not send them again: go-redis subscribes a new
// connection to all its channels in one SUBSCRIBE, which one refused
// channel would fail whole.
func (s *subscription) refuse(err error) {
	s.mu.Lock()
	pending := s.pending
	s.pending = map[string][]*pendingAdd{}
	s.mu.Unlock()
	channels := make([]string, 0, len(pending))
	for ch, ws := range pending {
		channels = append(channels, ch)
		for _, w := range ws {
			w.err = err
			close(w.done)
		}
	}
	if len(channels) > 0 {
		ctx, cancel := context.WithTimeout(s.ctx, receivePoll)
		_ = s.ps.Unsubscribe(ctx, channels...)
		cancel()
	}
}

// pendingAdd is one channel of an Add waiting for its confirmation.
type pendingAdd struct {
	done chan struct{}
	err  error // set before done closes when the server refused
}

// Add sends SUBSCRIBE and waits until the server confirmed every channel.
func (s *subscription) Add(ctx context.Context, channels ...string) error {
	if s.closed.Load() {
		return errSubscriptionClosed
	}
	if len(channels) == 0 {
		return ctx.Err() // go-redis would send SUBSCRIBE alone: an error
	}
	confirmed := make([]*pendingAdd, len(channels))
	s.mu.Lock()
	for i, ch := range channels {
		confirmed[i] = &pendingAdd{done: make(chan struct{})}
		s.pending[ch] = append(s.pending[ch], confirmed[i])
	}
	s.mu.Unlock()
	err := s.send(ctx, func() error { return s.ps.Subscribe(ctx, channels...) })
	var refused redis.Error
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &refused), errors.Is(err, redis.ErrClosed), s.closed.Load():
		return translate(err)
	default:
		// The connection is broken (the server is down, say). go-redis
		// has recorded the channels: the connection the receiving
		// goroutine makes next subscribes to them, and its confirmation
		// ends the wait below.
	}
	for _, c := range confirmed {
		select {
		case <-c.done:
			if c.err != nil {
				return c.err
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stop:
			return errSubscriptionClosed
		}
	}
	return nil
}

// Remove sends UNSUBSCRIBE, without waiting for the server to apply it.
func (s *subscription) Remove(ctx context.Context, channels ...string) error {
	if s.closed.Load() {
		return errSubscriptionClosed
	}
	if len(channels) == 0 {
		return ctx.Err() // go-redis would unsubscribe from every channel
	}
	return translate(s.send(ctx, func() error { return s.ps.Unsubscribe(ctx, channels...) }))
}

// send runs f, a write on the PubSub's connection, in a goroutine of its
// own and returns its error, or ctx's as soon as ctx ends.
func (s *subscription) send(ctx context.Context, f func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ctx.Done() == nil {
		return f()
	}
	done := make(chan error, 1)
	s.calls.Add(1)
	go func() {
		defer s.calls.Done()
		done <- f()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the PubSub and waits for the receiving goroutine to end.
func (s *subscription) Close() error {
	if s.closed.Swap(true) {
		<-s.done
		return nil
	}
	close(s.stop)
	s.cancel()
	err := s.ps.Close()
	<-s.done
	s.calls.Wait()
	return err
}

// Done is closed once Close was called: the subscription reconnects by
// itself until then.
func (s *subscription) Done() <-chan struct{} { return s.ctx.Done() }
