package goredis

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/backoff"
)

var _ driver.Subscriber = (*Conn)(nil)

// Subscribe opens a go-redis PubSub (one connection of its own, which
// go-redis re-dials and re-subscribes after a failure) and delivers its
// messages to onMessage from one goroutine, which Close ends.
func (c *Conn) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	rdb, err := c.client()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &subscription{
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
		msg, err := s.ps.Receive(context.Background())
		if err != nil {
			if s.closed.Load() || errors.Is(err, redis.ErrClosed) {
				return // we, or the user's client, closed it
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
func (s *subscription) refuse(err error) {
	s.mu.Lock()
	pending := s.pending
	s.pending = map[string][]*pendingAdd{}
	s.mu.Unlock()
	for _, ws := range pending {
		for _, w := range ws {
			w.err = err
			close(w.done)
		}
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
	confirmed := make([]*pendingAdd, len(channels))
	s.mu.Lock()
	for i, ch := range channels {
		confirmed[i] = &pendingAdd{done: make(chan struct{})}
		s.pending[ch] = append(s.pending[ch], confirmed[i])
	}
	s.mu.Unlock()
	if err := s.ps.Subscribe(ctx, channels...); err != nil {
		return translate(err)
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

// Remove sends UNSUBSCRIBE.
func (s *subscription) Remove(ctx context.Context, channels ...string) error {
	if s.closed.Load() {
		return errSubscriptionClosed
	}
	return translate(s.ps.Unsubscribe(ctx, channels...))
}

// Close closes the PubSub and waits for the receiving goroutine to end.
func (s *subscription) Close() error {
	if s.closed.Swap(true) {
		<-s.done
		return nil
	}
	close(s.stop)
	err := s.ps.Close()
	<-s.done
	return err
}
