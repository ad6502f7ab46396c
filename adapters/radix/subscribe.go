package radixadapter

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/mediocregopher/radix/v4"

	"github.com/relock-go/relock/driver"
)

// errEnded reports a call on a subscription whose connection broke, or
// after its Close.
var errEnded = errors.New("relock/radix: subscription ended")

// Subscribe dials one connection (see [WithDialer]) and reads the messages
// of the channels later added to it in a goroutine of its own, which calls
// onMessage. It does not use radix.PubSubConn, which hides the server's
// confirmations that Add waits for. The subscription does not reconnect:
// when the connection breaks, Done is closed.
func (c *Conn) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	if onMessage == nil {
		return nil, errors.New("relock/radix: Subscribe with a nil onMessage")
	}
	client, err := c.get(ctx)
	if err != nil {
		return nil, translate(ctx, err)
	}
	network, addr, err := address(client)
	if err != nil {
		return nil, err
	}
	conn, err := c.dial(ctx, network, addr)
	if err != nil {
		return nil, translate(ctx, err)
	}
	s := &subscription{conn: conn, onMessage: onMessage, done: make(chan struct{})}
	s.wg.Add(1)
	go s.read()
	return s, nil
}

// address returns where client's server is: its Addr, or a primary's for
// a cluster or sentinel client (pub/sub channels span a cluster).
func address(client Client) (network, addr string, err error) {
	var a net.Addr
	switch cl := client.(type) {
	case interface{ Addr() net.Addr }:
		a = cl.Addr()
	case radix.MultiClient:
		sets, err := cl.Clients()
		if err != nil {
			return "", "", translate(context.Background(), err)
		}
		for _, rs := range sets {
			if rs.Primary != nil {
				a = rs.Primary.Addr()
				break
			}
		}
	}
	if a == nil {
		return "", "", errors.New("relock/radix: the client has no address to subscribe to")
	}
	return a.Network(), a.String(), nil
}

// subscription is a driver.Subscription on one radix.Conn.
type subscription struct {
	conn      radix.Conn
	onMessage func(channel, payload string)
	wg        sync.WaitGroup // the reading goroutine
	done      chan struct{}
	endOnce   sync.Once

	mu      sync.Mutex
	ended   bool
	pending []*command // sent, confirmations due, in the order sent
}

// command is a SUBSCRIBE or UNSUBSCRIBE waiting for its confirmations,
// one per channel (an error reply answers it whole).
type command struct {
	kind string // "subscribe" or "unsubscribe"
	left int
	err  error
	done chan struct{}
}

// Add sends SUBSCRIBE and waits until the server confirmed every channel.
// An error reply (such as NOPERM) is returned as the server's error.
func (s *subscription) Add(ctx context.Context, channels ...string) error {
	cmd, err := s.send(ctx, "subscribe", channels)
	if err != nil || cmd == nil {
		return err
	}
	select {
	case <-cmd.done:
		return cmd.err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return errEnded
	}
}

// Remove sends UNSUBSCRIBE, without waiting for the confirmations.
func (s *subscription) Remove(ctx context.Context, channels ...string) error {
	_, err := s.send(ctx, "unsubscribe", channels)
	return err
}

// send writes the command kind for channels and records it as pending.
func (s *subscription) send(ctx context.Context, kind string, channels []string) (*command, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, errEnded
	}
	if len(channels) == 0 {
		return nil, nil
	}
	cmd := &command{kind: kind, left: len(channels), done: make(chan struct{})}
	s.pending = append(s.pending, cmd)
	args := append([]string{kind}, channels...)
	// The reply, if any, comes to read: nothing to decode here.
	if err := encodeDecode(ctx, s.conn, args, nil); err != nil {
		s.pending = s.pending[:len(s.pending)-1]
		return nil, translate(ctx, err)
	}
	return cmd, nil
}

// read is the goroutine that reads the connection until it breaks or is
// closed, then ends the subscription.
func (s *subscription) read() {
	defer s.wg.Done()
	defer s.end()
	for {
		var v any
		err := s.conn.EncodeDecode(context.Background(), nil, &v)
		if err != nil {
			if !inStep(err) {
				return
			}
			s.reply("", translate(context.Background(), err))
			continue
		}
		msg, _ := v.([]any)
		if len(msg) < 2 {
			continue
		}
		kind, _ := convert(msg[0])
		switch kind {
		case "message":
			if len(msg) == 3 {
				channel, _ := convert(msg[1])
				payload, _ := convert(msg[2])
				ch, _ := channel.(string)
				p, _ := payload.(string)
				s.onMessage(ch, p)
			}
		case "subscribe", "unsubscribe":
			s.reply(kind.(string), nil)
		}
	}
}

// reply counts one confirmation of kind, or an error reply, against the
// oldest pending command.
func (s *subscription) reply(kind string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 {
		return
	}
	cmd := s.pending[0]
	if err == nil && kind != cmd.kind {
		return
	}
	if cmd.left--; err != nil {
		cmd.left = 0
	}
	if cmd.left == 0 {
		s.pending = s.pending[1:]
		cmd.err = err
		close(cmd.done)
	}
}

// end closes Done and the connection, once.
func (s *subscription) end() {
	s.endOnce.Do(func() {
		_ = s.conn.Close() // first: it ends a write that holds mu
		s.mu.Lock()
		s.ended = true
		s.mu.Unlock()
		close(s.done)
	})
}

// Done is closed once the connection broke, or Close was called.
func (s *subscription) Done() <-chan struct{} { return s.done }

// Close closes the connection and waits for the reading goroutine to end.
// Calls after the first do likewise and return nil.
func (s *subscription) Close() error {
	s.end()
	s.wg.Wait()
	return nil
}
