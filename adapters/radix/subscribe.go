package radixadapter

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/mediocregopher/radix/v4"

	"github.com/relock-go/relock/driver"
)

var errEnded = errors.New("relock/radix: subscription ended")

// Subscribe dials one connection (see [WithDialer]) and reads it in a
// goroutine of its own. It does not use radix.PubSubConn, which hides the
// confirmations that Add waits for. When the connection breaks, Done is
// closed: there is no reconnection.
func (c *Conn) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	if onMessage == nil {
		return nil, errors.New("relock/radix: Subscribe with a nil onMessage")
	}
	client, err := c.get(ctx)
	if err != nil {
		return nil, translate(ctx, err)
	}
	var addr net.Addr
	switch cl := client.(type) {
	case interface{ Addr() net.Addr }:
		addr = cl.Addr()
	case radix.MultiClient: // a primary of a cluster (channels span it) or sentinel
		sets, _ := cl.Clients()
		for _, rs := range sets {
			if rs.Primary != nil {
				addr = rs.Primary.Addr()
			}
		}
	}
	if addr == nil {
		return nil, errors.New("relock/radix: the client has no address to subscribe to")
	}
	conn, err := c.dial(ctx, addr.Network(), addr.String())
	if err != nil {
		return nil, translate(ctx, err)
	}
	s := &subscription{conn: conn, onMessage: onMessage, done: make(chan struct{})}
	s.wg.Add(1)
	go s.read()
	return s, nil
}

type subscription struct {
	conn      radix.Conn
	onMessage func(channel, payload string)
	wg        sync.WaitGroup
	done      chan struct{}
	once      sync.Once
	mu        sync.Mutex
	ended     bool
	pending   []*command // sent, confirmations due
}

// command is a SUBSCRIBE or UNSUBSCRIBE awaiting one confirmation per
// channel, or an error reply.
type command struct {
	kind string
	left int
	err  error
	done chan struct{}
}

// Add sends SUBSCRIBE and waits until the server confirmed every channel.
func (s *subscription) Add(ctx context.Context, channels ...string) error {
	cmd, err := s.send(ctx, "subscribe", channels)
	if cmd == nil {
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

// Remove sends UNSUBSCRIBE and does not wait.
func (s *subscription) Remove(ctx context.Context, channels ...string) error {
	_, err := s.send(ctx, "unsubscribe", channels)
	return err
}

func (s *subscription) send(ctx context.Context, kind string, channels []string) (*command, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, errEnded
	} else if len(channels) == 0 {
		return nil, nil
	}
	cmd := &command{kind: kind, left: len(channels), done: make(chan struct{})}
	s.pending = append(s.pending, cmd)
	// No receiver: the confirmations come to read.
	if err := encodeDecode(ctx, s.conn, append([]string{kind}, channels...), nil); err != nil {
		s.pending = s.pending[:len(s.pending)-1]
		return nil, translate(ctx, err)
	}
	return cmd, nil
}

// read reads the connection until it breaks or closes, then ends s.
func (s *subscription) read() {
	defer s.wg.Done()
	defer s.end()
	for {
		var v any
		if err := s.conn.EncodeDecode(context.Background(), nil, &v); !inStep(err) {
			return
		} else if err != nil {
			s.reply("", translate(context.Background(), err)) // an error reply: NOPERM...
			continue
		}
		msg, _ := convert(v)
		m, _ := msg.([]any)
		if len(m) == 3 && m[0] == "message" {
			ch, _ := m[1].(string)
			p, _ := m[2].(string)
			s.onMessage(ch, p)
		} else if len(m) == 3 && (m[0] == "subscribe" || m[0] == "unsubscribe") {
			s.reply(m[0].(string), nil)
		}
	}
}

// reply counts a confirmation of kind, or an error reply, for the oldest
// pending command.
func (s *subscription) reply(kind string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 || (err == nil && kind != s.pending[0].kind) {
		return
	}
	cmd := s.pending[0]
	if cmd.left--; cmd.left == 0 || err != nil {
		s.pending = s.pending[1:]
		cmd.err = err
		close(cmd.done)
	}
}

// end closes the connection (first: it ends a write that holds mu) and
// Done, once.
func (s *subscription) end() {
	s.once.Do(func() {
		_ = s.conn.Close()
		s.mu.Lock()
		s.ended = true
		s.mu.Unlock()
		close(s.done)
	})
}

func (s *subscription) Done() <-chan struct{} { return s.done }

// Close ends s and waits for its goroutine.
func (s *subscription) Close() error {
	s.end()
	s.wg.Wait()
	return nil
}
