package rueidisadapter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/redis/rueidis"

	"github.com/relock-go/relock/driver"
)

var errSubscriptionEnded = fmt.Errorf("relock/rueidis: subscription ended: %w", net.ErrClosed)

func ended(err error) error {
	if err == nil {
		return errSubscriptionEnded
	}
	return fmt.Errorf("%w: %w", errSubscriptionEnded, err)
}

// Subscribe pins one connection with Client.Dedicate; rueidis calls its
// Pub/Sub hooks from the connection's reading goroutine, one at a time. It
// does not reconnect: Done closes when rueidis reports the connection gone
// on the hooks' channel (a server that closed it, or that its health check
// found silent) or a command on it fails, and relock opens a new one. Over
// RESP2 rueidis runs Pub/Sub on a second connection that it closes with
// the first; on a cluster the connection goes to one node.
func (c *Conn) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	cl, err := c.use(ctx)
	if err != nil {
		return nil, err
	}
	if onMessage == nil {
		return nil, errors.New("relock/rueidis: Subscribe with a nil message handler")
	}
	dc, _, err := c.dedicate(ctx, cl) // dc.Close gives it back
	if err != nil {
		return nil, err
	}
	s := &subscription{conn: c, dc: dc, onMessage: onMessage, done: make(chan struct{}), exited: make(chan struct{})}
	errs := dc.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: s.deliver})
	select {
	case err := <-errs: // the connection could not be made
		dc.Close()
		return nil, ended(err)
	default:
	}
	go func() {
		defer close(s.exited)
		<-errs
		s.end()
	}()
	return s, nil
}

// subscription is the driver.Subscription of Conn.Subscribe.
type subscription struct {
	conn      *Conn
	dc        rueidis.DedicatedClient
	onMessage func(channel, payload string)

	gate sync.Mutex // held while onMessage runs
	off  bool       // under gate: deliver nothing more

	endOnce, closeOnce sync.Once
	done, exited       chan struct{} // Done; the end of the goroutine watching the hooks
	unanswered         atomic.Bool   // a command was left without its reply
}

func (s *subscription) deliver(m rueidis.PubSubMessage) {
	s.gate.Lock()
	defer s.gate.Unlock()
	if !s.off {
		s.onMessage(m.Channel, m.Message)
	}
}

// end stops delivery, once a running onMessage returned, and closes Done.
func (s *subscription) end() {
	s.endOnce.Do(func() {
		s.gate.Lock()
		s.off = true
		s.gate.Unlock()
		close(s.done)
	})
}

// Add sends SUBSCRIBE and returns once the server confirmed it.
func (s *subscription) Add(ctx context.Context, channels ...string) error {
	return s.send(ctx, channels, func(b rueidis.Builder) rueidis.Completed { return b.Subscribe().Channel(channels...).Build() })
}

// Remove sends UNSUBSCRIBE; rueidis returns once the server confirmed it.
func (s *subscription) Remove(ctx context.Context, channels ...string) error {
	return s.send(ctx, channels, func(b rueidis.Builder) rueidis.Completed { return b.Unsubscribe().Channel(channels...).Build() })
}

// send runs cmd. An error reply (NOPERM) is returned as rueidis reports
// it; any other failure but the context's ends the subscription.
func (s *subscription) send(ctx context.Context, channels []string, cmd command) error {
	select {
	case <-s.done:
		return errSubscriptionEnded
	default:
	}
	if err := ctx.Err(); err != nil || len(channels) == 0 {
		return err
	}
	err := s.dc.Do(ctx, cmd(s.dc.B())).Error()
	if _, reply := rueidis.IsRedisErr(err); err == nil || reply {
		return translate(err)
	} else if ctx.Err() != nil {
		s.unanswered.Store(true)
		return ctx.Err()
	}
	s.end()
	return ended(err)
}

func (s *subscription) Done() <-chan struct{} { return s.done }

// Close ends delivery, once a running onMessage returned, closes the
// connection and waits for the goroutine watching it. When a command was
// left without its reply, rueidis may wait up to a second to close the
// connection, so that is done in the background, which Conn.Close waits
// for.
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		s.end()
		closeConn := func() { s.dc.Close(); <-s.exited }
		if s.unanswered.Load() {
			s.conn.background(closeConn)
		} else {
			closeConn()
		}
	})
	return nil
}
