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
// The subscription is that connection: when a read or write on it fails,
// Done closes and the PubSub is closed (the connection go-redis dials
// again by itself after a failure is closed with it, unused).
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
	if !c.goTracked(func() { _ = s.Close() }) { // a dial may hold it: in the background
		_ = s.Close()
	}
	return nil, err
}

type subscription struct {
	ctx       context.Context // cancelled when it ends: stops a dial
	cancel    context.CancelFunc
	ps        *redis.PubSub
	onMessage func(channel, payload string)
	ready     chan struct{} // the PING was answered
	done      chan struct{} // it has ended; err says why
	err       error
	once      sync.Once
	exited    chan struct{} // receive returned
	wmu       sync.Mutex    // orders the writes of Add and Remove

	mu      sync.Mutex
	pending []*pendingAdd // Adds awaiting confirmation, in the order sent
	closed  bool
	calls   sync.WaitGroup // the goroutines of send
}

// pendingAdd is one SUBSCRIBE awaiting its confirmations.
type pendingAdd struct {
	left []string // channels not confirmed yet
	done chan struct{}
	err  error // the server's refusal, set before done closes
}

var errEnded = errors.New("relock/goredisv8: subscription has ended")

// receive pings, then reads the connection until it fails or ends.
func (s *subscription) receive() {
	defer close(s.exited)
	err := s.ps.Ping(s.ctx)
	for ready := false; err == nil; {
		var msg any
		if msg, err = s.ps.ReceiveTimeout(s.ctx, 0); ready && isReply(err) {
			s.settle("", driver.WrapServerError(err)) // a refused SUBSCRIBE
			err = nil
		}
		switch m := msg.(type) {
		case *redis.Message:
			if s.ended() == nil {
				s.onMessage(m.Channel, m.Payload)
			}
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				s.settle(m.Channel, nil)
			}
		case *redis.Pong:
			if !ready {
				ready = true
				close(s.ready)
			}
		}
	}
	s.end(err)
}

// settle confirms channel to the oldest Add waiting for it or, with an
// error, fails the oldest Add: replies come in the order sent.
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

// end records why the subscription ended, closes the PubSub, then done:
// once Done is seen, the connection go-redis may have dialled again by
// itself after the failure is closed too.
func (s *subscription) end(err error) {
	s.once.Do(func() {
		s.err = err
		s.cancel()
		_ = s.ps.Close()
		close(s.done)
	})
}

// ended returns an error once the subscription has ended.
func (s *subscription) ended() error {
	select {
	case <-s.done:
		if s.err != nil {
			return errors.Join(errEnded, translate(s.err))
		}
		return errEnded
	default:
		return nil
	}
}

// send runs register and write in a goroutine of its own and returns
// write's error, or ctx's as soon as ctx ends. A failed write ends it.
func (s *subscription) send(ctx context.Context, register func(), write func() error) error {
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
		if err != nil && !isReply(err) {
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
	if err := errors.Join(s.ended(), ctx.Err()); err != nil || len(channels) == 0 {
		return err
	}
	p := &pendingAdd{left: slices.Clone(channels), done: make(chan struct{})}
	err := s.send(ctx, func() {
		s.mu.Lock()
		s.pending = append(s.pending, p)
		s.mu.Unlock()
	}, func() error { return s.ps.Subscribe(ctx, channels...) })
	if err != nil {
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
	if err := errors.Join(s.ended(), ctx.Err()); err != nil || len(channels) == 0 {
		return err // no channel: go-redis would unsubscribe from all
	}
	return s.send(ctx, func() {}, func() error { return s.ps.Unsubscribe(ctx, channels...) })
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
