package valkeyadapter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/valkey-io/valkey-go"

	"github.com/relock-go/relock/driver"
)

var errSubEnded = fmt.Errorf("relock/valkey: subscription ended: %w", net.ErrClosed)

// Subscribe pins one connection with Client.Dedicate and receives its
// messages through Pub/Sub hooks, called from the connection's reading
// goroutine. SUBSCRIBE and UNSUBSCRIBE go out on it with Do, which returns
// once the server confirmed them. There is no reconnection: when the
// connection breaks (valkey also drops one that stops answering its
// pings), Done closes. On a cluster the connection goes to the node of the
// first SUBSCRIBE. onMessage must not call Close.
func (c *Conn) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	cl, err := c.use(ctx)
	if err != nil {
		return nil, err
	}
	if onMessage == nil {
		return nil, errors.New("relock/valkey: Subscribe with a nil message handler")
	}
	dc, _, err := c.dedicate(ctx, cl) // dc.Close gives it back
	if err != nil {
		return nil, err
	}
	s := &subscription{dc: dc, onMessage: onMessage, done: make(chan struct{}), watched: make(chan struct{})}
	errs := dc.SetPubSubHooks(valkey.PubSubHooks{OnMessage: s.deliver})
	select {
	case err := <-errs: // the connection could not be made
		dc.Close()
		return nil, cmp.Or(err, errSubEnded)
	default:
	}
	go s.watch(errs)
	return s, nil
}

type subscription struct {
	dc        valkey.DedicatedClient
	onMessage func(channel, payload string)
	mu        sync.Mutex // held while onMessage runs
	off       bool       // onMessage is not to be called again
	once      sync.Once
	ended     atomic.Bool   // set before done is closed
	done      chan struct{} // closed when the connection has ended
	watched   chan struct{} // closed when watch has returned
}

func (s *subscription) deliver(m valkey.PubSubMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.off {
		s.onMessage(m.Channel, m.Message)
	}
}

// watch ends the subscription when the hooks' error channel fires: the
// connection broke or was closed. valkey closes the channel once it no
// longer uses the hooks.
func (s *subscription) watch(errs <-chan error) {
	defer close(s.watched)
	<-errs
	s.ended.Store(true)
	close(s.done)
	s.shut()
	for range errs {
	}
}

// shut stops delivery, waiting for a running onMessage, and closes the
// connection, which valkey then drops rather than pools.
func (s *subscription) shut() {
	s.once.Do(func() {
		s.mu.Lock()
		s.off = true
		s.mu.Unlock()
		s.dc.Close()
	})
}

// Add sends SUBSCRIBE and returns once the server confirmed it.
func (s *subscription) Add(ctx context.Context, channels ...string) error {
	return s.send(ctx, channels, func(b valkey.Builder) valkey.Completed { return b.Subscribe().Channel(channels...).Build() })
}

// Remove sends UNSUBSCRIBE (valkey waits for the confirmation too).
func (s *subscription) Remove(ctx context.Context, channels ...string) error {
	return s.send(ctx, channels, func(b valkey.Builder) valkey.Completed { return b.Unsubscribe().Channel(channels...).Build() })
}

// send runs cmd on the connection, unless the subscription ended.
func (s *subscription) send(ctx context.Context, channels []string, cmd func(valkey.Builder) valkey.Completed) error {
	if s.ended.Load() {
		return errSubEnded
	}
	if err := ctx.Err(); err != nil || len(channels) == 0 {
		return err
	}
	err := s.dc.Do(ctx, cmd(s.dc.B())).Error()
	if _, reply := valkey.IsValkeyErr(err); err == nil || reply {
		return wrap(err)
	}
	if s.ended.Load() {
		return errSubEnded
	}
	return cmp.Or(ctx.Err(), err)
}

// Done is closed when the connection broke or Close was called.
func (s *subscription) Done() <-chan struct{} { return s.done }

// Close closes the connection and returns once onMessage is not running
// and will not be called again, and the subscription's goroutine ended.
func (s *subscription) Close() error {
	s.shut()
	<-s.watched
	return nil
}
