package redigo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/relock-go/relock/driver"
)

// Timing of the keepalive of a subscription connection: without it, a
// connection cut without a FIN or RST (a frozen server, a lost host or
// link) would leave a read of a quiet subscription blocked, and Done open,
// for good.
const (
	pingInterval   = time.Second     // how often the subscription sends PING
	receiveTimeout = 3 * time.Second // the silence after which it counts as broken
)

var errSubClosed = errors.New("relock/redigo: subscription is closed")

// Subscribe takes one connection from the pool, checks it with PING (up to
// 16 pooled ones, as those left idle across a server restart are dead) and
// keeps it for pub/sub until the subscription ends; it counts against the
// pool's MaxActive meanwhile and goes back closed. One goroutine reads it
// and calls onMessage; another sends PING every second, so that Done
// closes within 3 s of the connection going silent. A pool whose
// DialReadTimeout is set should keep it above 3 s. The subscription does
// not reconnect: relock opens a new one when Done is closed.
func (c *Conn) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	if onMessage == nil {
		return nil, errors.New("relock/redigo: Subscribe with a nil message handler")
	}
	for tries := 1; ; tries++ {
		rc, err := c.conn(ctx)
		if err != nil {
			return nil, err
		}
		pctx, cancel := context.WithTimeout(ctx, receiveTimeout)
		_, err = do(pctx, rc, "PING")
		cancel()
		if err == nil {
			return subscribe(rc, onMessage), nil
		}
		stale := rc.Err() != nil && !errors.Is(err, context.DeadlineExceeded)
		_ = rc.Close()
		if !stale || tries == 16 {
			return nil, err
		}
	}
}

// subscribe starts the subscription on rc.
func subscribe(rc redis.Conn, onMessage func(channel, payload string)) *subscription {
	s := &subscription{rc: rc, onMessage: onMessage}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go s.receive()
	go s.keepAlive()
	return s
}

// subscription is the driver.Subscription of Conn.Subscribe. Every
// command written is queued in pending until all its replies came, in
// order, so that each confirmation or error reply reaches the Add it
// answers. Only the receive goroutine reads; writers hold mu.
type subscription struct {
	rc        redis.Conn
	onMessage func(channel, payload string)
	ctx       context.Context // Done: cancelled by Close or a broken connection
	cancel    context.CancelFunc
	wg        sync.WaitGroup // the receive and keepalive goroutines

	mu      sync.Mutex
	pending []*command // written, replies due, oldest first
}

// command is one command written on the connection.
type command struct {
	left int        // replies still due
	done chan error // for an Add: gets the outcome; nil otherwise
}

// write sends cmd args... and queues c for its replies. It fails once the
// subscription has ended.
func (s *subscription) write(c *command, cmd string, args ...any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return errSubClosed
	}
	s.pending = append(s.pending, c)
	err := s.rc.Send(cmd, args...)
	if err == nil {
		err = s.rc.Flush()
	}
	return err // a broken connection: the reader finds it too and ends
}

// Add sends SUBSCRIBE and returns once the server confirmed every channel,
// or refused them (an error reply, NOPERM say), or the connection broke.
func (s *subscription) Add(ctx context.Context, channels ...string) error {
	if err := ctx.Err(); err != nil || len(channels) == 0 {
		return err
	}
	c := &command{left: len(channels), done: make(chan error, 1)}
	if err := s.write(c, "SUBSCRIBE", anys(channels)...); err != nil {
		return translate(ctx, err)
	}
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Remove sends UNSUBSCRIBE, without waiting for the confirmations.
func (s *subscription) Remove(ctx context.Context, channels ...string) error {
	if err := ctx.Err(); err != nil || len(channels) == 0 {
		return err
	}
	return translate(ctx, s.write(&command{left: len(channels)}, "UNSUBSCRIBE", anys(channels)...))
}

// Done is closed when the connection broke or Close was called.
func (s *subscription) Done() <-chan struct{} { return s.ctx.Done() }

// Close ends the subscription and waits for its goroutines.
func (s *subscription) Close() error {
	s.cancel() // ends a read in redis.ReceiveContext, and the keepalive
	s.wg.Wait()
	return nil
}

// receive reads the connection until it breaks or Close, then ends the
// subscription: it closes Done, fails the Adds still waiting and closes
// the connection.
func (s *subscription) receive() {
	defer s.wg.Done()
	psc := redis.PubSubConn{Conn: s.rc}
	for s.ctx.Err() == nil && s.rc.Err() == nil {
		ctx, cancel := context.WithTimeout(s.ctx, receiveTimeout)
		switch v := psc.ReceiveContext(ctx).(type) {
		case redis.Message:
			if s.ctx.Err() == nil {
				s.onMessage(v.Channel, string(v.Data))
			}
		case redis.Error:
			s.reply(v)
		case error:
			if s.rc.Err() == nil {
				s.reply(nil) // the +PONG to a PING sent while subscribed to nothing
			}
		default: // a confirmation, or the PONG to a PING
			s.reply(nil)
		}
		cancel()
	}
	err := errSubClosed
	if s.ctx.Err() == nil {
		err = fmt.Errorf("relock/redigo: subscription connection broke: %w", s.rc.Err())
	}
	s.cancel()
	if s.rc.Err() == nil {
		// Still healthy (Close came between two reads): break it, for the
		// pool would unsubscribe it with reads that no deadline bounds.
		expired, cancel := context.WithDeadline(context.Background(), time.Time{})
		_, _ = redis.ReceiveContext(s.rc, expired)
		cancel()
	}
	s.mu.Lock()
	for _, c := range s.pending {
		if c.done != nil {
			c.done <- err
		}
	}
	s.pending = nil
	_ = s.rc.Close()
	s.mu.Unlock()
}

// reply gives one reply, or an error reply, to the oldest command due.
func (s *subscription) reply(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 {
		return
	}
	c := s.pending[0]
	if c.left--; c.left > 0 && err == nil {
		return
	}
	s.pending = s.pending[1:]
	if c.done != nil {
		c.done <- driver.WrapServerError(err)
	}
}

// keepAlive sends PING every pingInterval until the subscription ends.
func (s *subscription) keepAlive() {
	defer s.wg.Done()
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			_ = s.write(&command{left: 1}, "PING")
		}
	}
}
