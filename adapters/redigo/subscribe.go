package redigo

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/backoff"
)

var _ driver.Subscriber = (*Conn)(nil)

// Timing of a subscription connection.
const (
	// pingInterval is how often a subscription sends PING, so that a
	// quiet connection still receives something.
	pingInterval = time.Second
	// receiveTimeout is the silence after which the subscription counts
	// its connection as dead and takes a new one.
	receiveTimeout = 3 * time.Second
	// healthyAfter is how long a connection must have lived for the
	// reconnection backoff to start again from its shortest wait.
	healthyAfter = time.Second
	// maxStaleConns bounds the pooled connections tried in a row, each
	// failing its PING, before a connection attempt counts as failed.
	// After a server restart the pool's idle connections are all dead.
	maxStaleConns = 16
)

var errSubscriptionClosed = errors.New("relock/redigo: subscription is closed")

// Subscribe takes one connection from the pool (GetContext), checks it with
// PING and keeps it for pub/sub until the subscription's Close, which closes
// it: it counts against the pool's MaxActive meanwhile, and goes back to the
// pool closed, never idle in subscribed state. One goroutine reads it and
// calls onMessage; another sends PING every second, so that a connection
// silent for 3 s counts as dead. After a broken
// connection the subscription takes a new one from the pool and subscribes
// again to every channel added and not removed, backing off from 1 ms to 1 s
// between failed attempts, until Close.
//
// The connections should implement redis.ConnWithContext, as those of
// *redis.Pool do: then every read is bounded by the context Close cancels.
// Other connections are read with ReceiveWithTimeout (or Receive) and
// closed by Close to end a read. A pool whose dial function sets
// DialReadTimeout should keep it above 3 s (or leave it zero), or a quiet
// subscription connection times out and is replaced every DialReadTimeout.
func (c *Conn) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	if onMessage == nil {
		return nil, errors.New("relock/redigo: Subscribe with a nil message handler")
	}
	rc, err := c.subscriptionConn(ctx)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &subscription{
		c:         c,
		onMessage: onMessage,
		ctx:       sctx,
		cancel:    cancel,
		channels:  map[string]struct{}{},
	}
	s.attach(rc)
	s.wg.Add(2)
	go s.receive(rc)
	go s.keepAlive()
	return s, nil
}

// subscriptionConn takes a connection from the pool and checks it with
// PING. A pooled connection can be dead (the server restarted since it was
// last used): up to maxStaleConns are tried in a row.
func (c *Conn) subscriptionConn(ctx context.Context) (redis.Conn, error) {
	var err error
	for range maxStaleConns {
		var rc redis.Conn
		if rc, err = c.conn(ctx); err != nil {
			return nil, err
		}
		if err = pingConn(ctx, rc); err == nil {
			return rc, nil
		}
		_ = rc.Close()
		if ctx.Err() != nil || errors.As(err, new(redis.Error)) {
			break // cancelled, or the server answered: no use trying others
		}
	}
	return nil, err
}

// pingConn runs PING on rc, within receiveTimeout.
func pingConn(ctx context.Context, rc redis.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, receiveTimeout)
	defer cancel()
	var (
		r   any
		err error
	)
	switch rc := rc.(type) {
	case redis.ConnWithContext:
		r, err = rc.DoContext(ctx, "PING")
	case redis.ConnWithTimeout:
		r, err = rc.DoWithTimeout(receiveTimeout, "PING")
	default:
		r, err = rc.Do("PING")
	}
	if err != nil {
		return translate(ctx, err)
	}
	if s, _ := redis.String(r, nil); s != "PONG" {
		return errors.New("relock/redigo: unexpected reply to PING")
	}
	return nil
}

// subscription is the driver.Subscription of Conn.Subscribe.
//
// Every command written on the connection is recorded in inflight until its
// replies arrive, in order, so that each confirmation (or error reply) is
// matched with the SUBSCRIBE it answers. Only the receive goroutine reads
// the connection; writers hold mu, since a redigo connection takes one
// writer and one reader at a time.
type subscription struct {
	c         *Conn
	onMessage func(channel, payload string)

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	closed atomic.Bool
	wg     sync.WaitGroup // the receive and ping goroutines

	mu       sync.Mutex
	rc       redis.Conn // the connection; nil while taking a new one
	inflight []*command // commands written on rc whose replies are due, oldest first
	channels map[string]struct{}
	parked   []*waiter // Adds whose SUBSCRIBE is to go out on the next connection
}

// command is one command written on the subscription connection.
type command struct {
	kind     string // "subscribe", "unsubscribe" or "ping": the replies it gets
	left     int    // replies still due
	channels []string
	waiters  []*waiter // Adds waiting for this SUBSCRIBE's confirmations
}

// waiter is one Add waiting for its confirmations. err is set before done
// is closed.
type waiter struct {
	done chan struct{}
	err  error
}

func (w *waiter) resolve(err error) {
	w.err = err
	close(w.done)
}

// write records cmd and sends it on s.rc. s.mu must be held and s.rc set.
// A write error means a broken connection, which the receive goroutine
// also finds; it then subscribes again on a new one.
func (s *subscription) write(cmd *command) {
	args := make([]any, len(cmd.channels))
	for i, ch := range cmd.channels {
		args[i] = ch
	}
	s.inflight = append(s.inflight, cmd)
	psc := redis.PubSubConn{Conn: s.rc}
	switch cmd.kind {
	case "subscribe":
		_ = psc.Subscribe(args...)
	case "unsubscribe":
		_ = psc.Unsubscribe(args...)
	default:
		_ = psc.Conn.Send("PING")
		_ = psc.Conn.Flush()
	}
}

// Add sends SUBSCRIBE and waits until the server confirmed every channel.
// When the connection breaks meanwhile, the SUBSCRIBE that the new
// connection gets confirms them. An error reply (such as NOPERM) is
// returned as redigo reports it.
func (s *subscription) Add(ctx context.Context, channels ...string) error {
	if s.closed.Load() {
		return errSubscriptionClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(channels) == 0 {
		return nil
	}
	w := &waiter{done: make(chan struct{})}
	s.mu.Lock()
	for _, ch := range channels {
		s.channels[ch] = struct{}{}
	}
	if s.rc == nil {
		s.parked = append(s.parked, w)
	} else {
		s.write(&command{kind: "subscribe", left: len(channels), channels: slices.Clone(channels), waiters: []*waiter{w}})
	}
	s.mu.Unlock()
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.ctx.Done():
		return errSubscriptionClosed
	}
}

// Remove sends UNSUBSCRIBE, without waiting for the confirmations. A channel
// removed is not subscribed again on a new connection.
func (s *subscription) Remove(ctx context.Context, channels ...string) error {
	if s.closed.Load() {
		return errSubscriptionClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(channels) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range channels {
		delete(s.channels, ch)
	}
	if s.rc != nil {
		s.write(&command{kind: "unsubscribe", left: len(channels), channels: slices.Clone(channels)})
	}
	return nil
}

// Close stops the goroutines, closes the connection and waits for the
// goroutines to end. Calls after the first wait likewise and return nil.
func (s *subscription) Close() error {
	if s.closed.Swap(true) {
		s.wg.Wait()
		return nil
	}
	s.cancel() // ends a read through ReceiveContext, and the ping goroutine
	s.mu.Lock()
	rc := s.rc
	s.mu.Unlock()
	if _, ok := rc.(redis.ConnWithContext); rc != nil && !ok {
		_ = rc.Close() // the only way to end its read
	}
	s.wg.Wait()
	return nil
}

// attach makes rc the subscription's connection and subscribes it to every
// channel, for the Adds parked meanwhile too. It reports false, having
// closed rc, when the subscription is closed.
func (s *subscription) attach(rc redis.Conn) bool {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		_ = rc.Close()
		return false
	}
	s.rc = rc
	parked := s.parked
	s.parked = nil
	if len(s.channels) > 0 {
		channels := make([]string, 0, len(s.channels))
		for ch := range s.channels {
			channels = append(channels, ch)
		}
		slices.Sort(channels)
		s.write(&command{kind: "subscribe", left: len(channels), channels: channels, waiters: parked})
		parked = nil
	}
	s.mu.Unlock()
	for _, w := range parked {
		w.resolve(nil) // its channels were removed meanwhile
	}
	return true
}

// detach drops the broken (or closed) connection rc and closes it. The
// Adds still waiting for their SUBSCRIBE to be confirmed wait for the next
// connection's.
func (s *subscription) detach(rc redis.Conn) {
	s.mu.Lock()
	if s.rc == rc {
		s.rc = nil
	}
	for _, cmd := range s.inflight {
		s.parked = append(s.parked, cmd.waiters...)
	}
	s.inflight = nil
	s.mu.Unlock()
	_ = rc.Close()
}

// receive is the goroutine that reads the connection, and takes a new one
// when it breaks, until Close.
func (s *subscription) receive(rc redis.Conn) {
	defer s.wg.Done()
	var wait backoff.Backoff
	for {
		start := time.Now()
		s.read(rc)
		s.detach(rc)
		if s.ctx.Err() != nil {
			return
		}
		if time.Since(start) >= healthyAfter {
			wait.Reset()
		}
		for {
			if !wait.Wait(s.ctx.Done()) {
				return
			}
			var err error
			if rc, err = s.c.subscriptionConn(s.ctx); err == nil {
				break
			}
		}
		if !s.attach(rc) {
			return
		}
	}
}

// read handles what rc receives until it breaks or Close.
func (s *subscription) read(rc redis.Conn) {
	psc := redis.PubSubConn{Conn: rc}
	_, withContext := rc.(redis.ConnWithContext)
	_, withTimeout := rc.(redis.ConnWithTimeout)
	for {
		var v any
		switch {
		case withContext:
			ctx, cancel := context.WithTimeout(s.ctx, receiveTimeout)
			v = psc.ReceiveContext(ctx)
			cancel()
		case withTimeout:
			v = psc.ReceiveWithTimeout(receiveTimeout)
		default:
			v = psc.Receive()
		}
		switch v := v.(type) {
		case redis.Message:
			s.onMessage(v.Channel, string(v.Data))
		case redis.Subscription:
			s.reply(v.Kind, nil)
		case redis.Pong:
			s.reply("ping", nil)
		case redis.Error:
			s.reply("", v)
		case error:
			if s.ctx.Err() != nil || rc.Err() != nil || broken(v) {
				return
			}
			// The connection is fine: a reply that is no pub/sub
			// notification, as the +PONG to a PING sent while
			// subscribed to nothing.
			s.reply("", nil)
		}
	}
}

// broken reports whether err, from a read, can only come from a broken
// connection, for connections whose Err does not tell.
func broken(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// reply matches one reply, of the given kind ("" for any), or an error
// reply, with the oldest command in flight.
func (s *subscription) reply(kind string, err error) {
	s.mu.Lock()
	if len(s.inflight) == 0 {
		s.mu.Unlock()
		return
	}
	cmd := s.inflight[0]
	if err == nil && kind != "" && kind != cmd.kind {
		s.mu.Unlock()
		return // not an answer to it: ignore
	}
	if cmd.left--; err != nil {
		cmd.left = 0 // an error reply answers the whole command
	}
	if cmd.left > 0 {
		s.mu.Unlock()
		return
	}
	s.inflight = s.inflight[1:]
	if err != nil && cmd.kind == "subscribe" {
		for _, ch := range cmd.channels {
			delete(s.channels, ch) // not subscribed: do not try again
		}
	}
	s.mu.Unlock()
	for _, w := range cmd.waiters {
		w.resolve(err)
	}
}

// keepAlive is the goroutine that sends PING every pingInterval until
// Close.
func (s *subscription) keepAlive() {
	defer s.wg.Done()
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		if s.rc != nil {
			s.write(&command{kind: "ping", left: 1})
		}
		s.mu.Unlock()
	}
}

// Done is closed once Close was called: the subscription reconnects by
// itself until then.
func (s *subscription) Done() <-chan struct{} { return s.ctx.Done() }
