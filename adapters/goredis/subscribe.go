package goredis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relock-go/relock/driver"
)

// Subscribe opens one go-redis PubSub connection (a PING dials it) and
// delivers its messages to onMessage from one goroutine. The subscription
// does not reconnect: when a read or write on its connection fails, it
// closes the PubSub (and so the connection go-redis dials again within the
// failed call, unused) and closes Done.
//
// go-redis dials within its DialTimeout and ReadTimeout, and writes within
// its WriteTimeout, so Subscribe, Add and Remove are guarded as calls are
// (see "Deadlines"). A *redis.Ring has no one node for all channels:
// Subscribe fails with errors.ErrUnsupported, and waiters poll.
func (c *Conn) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	rdb, err := c.client()
	if err != nil {
		return nil, err
	}
	if _, ok := rdb.(*redis.Ring); ok {
		return nil, fmt.Errorf("relock/goredis: pub/sub through a *redis.Ring: %w", errors.ErrUnsupported)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	ps := rdb.Subscribe(rctx)
	if _, err := call(ctx, c.g, func() (any, error) { return nil, ps.Ping(ctx) }); err != nil {
		cancel()
		c.g.running.Add(1)
		go func() { // once the PING is done
			defer c.g.running.Done()
			_ = ps.Close()
		}()
		return nil, wrap(err) // WRONGPASS, say
	}
	s := &subscription{ps: ps, ctx: rctx, cancel: cancel, onMessage: onMessage, g: newGuard(rdb),
		pending: map[string][]chan error{}, done: make(chan struct{})}
	go s.receive()
	return s, nil
}

type subscription struct {
	ps        *redis.PubSub
	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	onMessage func(channel, payload string)
	g         *guard // runs Add's and Remove's writes

	mu      sync.Mutex
	pending map[string][]chan error // channel -> Adds awaiting the server
	done    chan struct{}           // closed when receive returns
}

var errEnded = errors.New("relock/goredis: subscription has ended")

// receivePoll bounds each read, and a dial go-redis makes within it.
const receivePoll = time.Second

func (s *subscription) receive() {
	defer close(s.done)
	defer s.ps.Close() // no other connection: go-redis may have dialed one
	for {
		ctx, cancel := context.WithTimeout(s.ctx, receivePoll)
		msg, err := s.ps.ReceiveTimeout(ctx, receivePoll)
		cancel()
		var ne net.Error
		var re redis.Error
		switch {
		case s.ctx.Err() != nil:
			return // Close
		case errors.As(err, &ne) && ne.Timeout():
			continue // nothing arrived
		case errors.As(err, &re): // SUBSCRIBE refused (NOPERM)
			s.settle(nil, wrap(err))
		case err != nil:
			return // the connection broke, or the PubSub was closed
		}
		switch m := msg.(type) {
		case *redis.Message:
			s.onMessage(m.Channel, m.Payload)
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				s.settle([]string{m.Channel}, nil)
			}
		}
	}
}

// settle ends the wait of the Adds of channels, or of every pending Add
// when channels is nil, with err.
func (s *subscription) settle(channels []string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if channels == nil {
		for ch := range s.pending {
			channels = append(channels, ch)
		}
	}
	for _, ch := range channels {
		for _, w := range s.pending[ch] {
			w <- err
		}
		delete(s.pending, ch)
	}
}

// Add sends SUBSCRIBE and returns once the server confirmed every channel.
func (s *subscription) Add(ctx context.Context, channels ...string) error {
	if err := s.usable(ctx); err != nil || len(channels) == 0 {
		return err
	}
	waits := make([]chan error, len(channels))
	s.mu.Lock()
	for i, ch := range channels {
		waits[i] = make(chan error, 1)
		s.pending[ch] = append(s.pending[ch], waits[i])
	}
	s.mu.Unlock()
	if err := s.send(ctx, func() error { return s.ps.Subscribe(ctx, channels...) }); err != nil {
		return err
	}
	for _, w := range waits {
		select {
		case err := <-w:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return errEnded
		}
	}
	return nil
}

// Remove sends UNSUBSCRIBE, without waiting for the server to apply it.
// (go-redis's Unsubscribe of no channel would remove them all.)
func (s *subscription) Remove(ctx context.Context, channels ...string) error {
	if err := s.usable(ctx); err != nil || len(channels) == 0 {
		return err
	}
	return s.send(ctx, func() error { return s.ps.Unsubscribe(ctx, channels...) })
}

func (s *subscription) usable(ctx context.Context) error {
	select {
	case <-s.done:
		return errEnded
	default:
		return ctx.Err()
	}
}

// send runs write on the PubSub's connection. Unless the server refused
// it, a failed write broke the connection: the subscription ends.
func (s *subscription) send(ctx context.Context, write func() error) error {
	_, err := call(ctx, s.g, func() (any, error) {
		err := write()
		var re redis.Error
		if err != nil && !errors.As(err, &re) {
			_ = s.ps.Close()
		}
		return nil, err
	})
	return wrap(err)
}

// Done is closed once the connection broke, or Close was called.
func (s *subscription) Done() <-chan struct{} { return s.done }

// Close closes the PubSub and waits for the goroutines to end.
func (s *subscription) Close() error {
	s.cancel()
	_ = s.ps.Close()
	<-s.done
	_ = s.g.drain()
	return nil
}
