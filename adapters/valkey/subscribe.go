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
// once the server confirmed them. There is no reconnection: Done closes
// when valkey reports the connection gone (the server closed it, or its
// health check found it silent) or a command on it fails, and relock opens
// a new one. Over RESP2 valkey runs Pub/Sub on a second connection that it
// closes with the first; on a cluster the connection goes to the node of
// the first SUBSCRIBE. onMessage must not call Close.
func (c *Conn) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	if onMessage == nil {
		return nil, errors.New("relock/valkey: Subscribe with a nil message handler")
	}
	dc, _, err := c.pin(ctx) // dc.Close gives it back
	if err != nil {
		return nil, err
	}
	s := &subscription{conn: c, dc: dc, onMessage: onMessage, done: make(chan struct{}), exited: make(chan struct{})}
	errs := dc.SetPubSubHooks(valkey.PubSubHooks{OnMessage: s.deliver})
	select {
	case err := <-errs: // the connection could not be made
		dc.Close()
		return nil, cmp.Or(err, errSubEnded)
	default:
	}
	go func() {
		defer close(s.exited)
		<-errs
		s.end()
		for range errs { // valkey closes it once it drops the hooks
		}
	}()
	return s, nil
}

type subscription struct {
	conn      *Conn
	dc        valkey.DedicatedClient
	onMessage func(channel, payload string)

	gate sync.Mutex // held while onMessage runs and while done closes

	endOnce, closeOnce sync.Once
	done, exited       chan struct{} // Done; the end of the goroutine watching the hooks
	unanswered         atomic.Bool   // a command was left without its reply
}

func (s *subscription) deliver(m valkey.PubSubMessage) {
	s.gate.Lock()
	defer s.gate.Unlock()
	select {
	case <-s.done:
	default:
		s.onMessage(m.Channel, m.Message)
	}
}

// end stops delivery, once a running onMessage returned, and closes Done.
func (s *subscription) end() {
	s.endOnce.Do(func() {
		s.gate.Lock()
		close(s.done)
		s.gate.Unlock()
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

// send runs cmd. An error reply (NOPERM) is returned as valkey reports
// it; any other failure but the context's ends the subscription.
func (s *subscription) send(ctx context.Context, channels []string, cmd command) error {
	select {
	case <-s.done:
		return errSubEnded
	default:
	}
	if err := ctx.Err(); err != nil || len(channels) == 0 {
		return err
	}
	err := s.dc.Do(ctx, cmd(s.dc.B())).Error()
	if _, reply := valkey.IsValkeyErr(err); err == nil || reply {
		return wrap(err)
	} else if ctx.Err() != nil {
		s.unanswered.Store(true)
		return ctx.Err()
	}
	s.end()
	return fmt.Errorf("%w: %w", errSubEnded, err)
}

// Done is closed when the connection broke or Close was called.
func (s *subscription) Done() <-chan struct{} { return s.done }

// Close ends delivery, once a running onMessage returned, closes the
// connection and waits for the goroutine watching it. When a command was
// left without its reply, valkey may wait up to a second to close the
// connection: Close then returns at once and Conn.Close waits for it.
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		s.end()
		closeConn := func() { s.dc.Close(); <-s.exited }
		if s.unanswered.Load() {
			s.conn.pinning.Go(closeConn)
		} else {
			closeConn()
		}
	})
	return nil
}
