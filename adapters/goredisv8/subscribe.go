package goredisv8

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/go-redis/redis/v8"

	"github.com/relock-go/relock/driver"
)

// Subscribe opens a go-redis PubSub on a connection of its own, checked
// with a PING, and delivers its messages to onMessage from one goroutine.
// The subscription is that one connection: when a read or write on it
// fails, Done closes and the PubSub is closed (go-redis dials again by
// itself after a failure; that connection is closed at once, unused), and
// relock opens another subscription.
func (c *Conn) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	rdb, err := c.client()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &subscription{ctx: sctx, cancel: cancel, ps: rdb.Subscribe(sctx), onMessage: onMessage,
		ready: make(chan struct{}), done: make(chan struct{}), exited: make(chan struct{})}
	go s.receive()
	select {
	case <-s.ready:
		return s, nil
	case <-s.done:
		err = translate(s.err)
	case <-ctx.Done():
		err = ctx.Err()
	}
	// A dial in progress holds the PubSub up to its DialTimeout: close in
	// the background (Conn.Close waits).
	if !c.goTracked(func() { _ = s.Close() }) {
		_ = s.Close()
	}
	return nil, err
}

type subscription struct {
	ctx       context.Context // cancelled by Close: ends a dial
	cancel    context.CancelFunc
	ps        *redis.PubSub
	onMessage func(channel, payload string)
	ready     chan struct{} // the PING was answered
	done      chan struct{} // the subscription ended
	exited    chan struct{} // the receiving goroutine returned
	wmu       sync.Mutex    // orders the writes of Add and Remove

	mu      sync.Mutex
	err     error         // why it ended, set before done closes
	pending []*pendingAdd // Adds awaiting confirmation, in the order sent
	closed  bool          // Close was called
	calls   sync.WaitGroup
}

// pendingAdd is one SUBSCRIBE awaiting its confirmations.
type pendingAdd struct {
	left []string // channels not yet confirmed
	done chan struct{}
	err  error // the server's refusal, set before done closes
}

var errEnded = errors.New("relock/goredisv8: subscription has ended")

// receive pings, then reads the connection until it fails or Close.
func (s *subscription) receive() {
	defer close(s.exited)
	err := s.ps.Ping(s.ctx)
	for err == nil {
		var msg any
		msg, err = s.ps.ReceiveTimeout(s.ctx, 0)
		var refused redis.Error
		if errors.As(err, &refused) && s.isReady() {
			s.settle("", driver.WrapServerError(err)) // a refused SUBSCRIBE
			err = nil
		}
		select {
		case <-s.done:
			return
		default:
		}
		switch m := msg.(type) {
		case *redis.Message:
			s.onMessage(m.Channel, m.Payload)
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				s.settle(m.Channel, nil)
			}
		case *redis.Pong:
			if !s.isReady() {
				close(s.ready)
			}
		}
	}
	s.end(err)
}

func (s *subscription) isReady() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

// settle confirms channel for the oldest Add waiting for it or, when err
// is not nil, fails the oldest Add: replies come in the order sent.
func (s *subscription) settle(channel string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.pending {
		j := slices.Index(p.left, channel)
		if err == nil && j < 0 {
			continue
		}
		if p.err = err; err == nil {
			p.left = slices.Delete(p.left, j, j+1)
		}
		if err != nil || len(p.left) == 0 {
			close(p.done)
			s.pending = slices.Delete(s.pending, i, i+1)
		}
		return
	}
}

// end closes done, recording why, and the PubSub. Only the first call
// counts.
func (s *subscription) end(err error) {
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		return
	default:
	}
	s.err = err
	close(s.done)
	s.mu.Unlock()
	s.cancel()
	_ = s.ps.Close()
}

// send runs write (SUBSCRIBE or UNSUBSCRIBE) in a goroutine of its own,
// after register, and returns its error, or ctx's as soon as ctx ends. A
// write that fails ends the subscription.
func (s *subscription) send(ctx context.Context, register func(), write func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errEnded
	}
	s.calls.Add(1)
	s.mu.Unlock()
	errc := make(chan error, 1)
	go func() {
		defer s.calls.Done()
		s.wmu.Lock()
		defer s.wmu.Unlock()
		register()
		err := write()
		var refused redis.Error
		if err != nil && !errors.As(err, &refused) {
			s.end(err)
		}
		errc <- translate(err)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Add sends SUBSCRIBE and returns once the server confirmed every channel.
func (s *subscription) Add(ctx context.Context, channels ...string) error {
	if err := s.ended(); err != nil || len(channels) == 0 {
		return errors.Join(err, ctx.Err())
	}
	p := &pendingAdd{left: slices.Clone(channels), done: make(chan struct{})}
	register := func() {
		s.mu.Lock()
		s.pending = append(s.pending, p)
		s.mu.Unlock()
	}
	if err := s.send(ctx, register, func() error { return s.ps.Subscribe(ctx, channels...) }); err != nil {
		return err
	}
	select {
	case <-p.done:
		return p.err
	case <-s.done:
		return s.ended()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Remove sends UNSUBSCRIBE, without waiting for the server to apply it.
func (s *subscription) Remove(ctx context.Context, channels ...string) error {
	if err := s.ended(); err != nil || len(channels) == 0 {
		return errors.Join(err, ctx.Err()) // no channel: go-redis would remove all
	}
	return s.send(ctx, func() {}, func() error { return s.ps.Unsubscribe(ctx, channels...) })
}

// ended returns an error once the subscription has ended.
func (s *subscription) ended() error {
	select {
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.err != nil && !s.closed {
			return errors.Join(errEnded, s.err)
		}
		return errEnded
	default:
		return nil
	}
}

// Done is closed once the connection broke or Close was called.
func (s *subscription) Done() <-chan struct{} { return s.done }

// Close ends the subscription and waits for its goroutines.
func (s *subscription) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.end(nil)
	<-s.exited
	s.calls.Wait()
	return nil
}
