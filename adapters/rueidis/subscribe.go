package rueidisadapter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/backoff"
)

// Reconnection of a subscription.
const (
	// healthyAfter is how long a connection must have lived for the
	// backoff to start again from its shortest wait.
	healthyAfter = time.Second
	// resubscribeTimeout bounds the SUBSCRIBE that a new connection sends
	// for the channels of the broken one.
	resubscribeTimeout = 10 * time.Second
	// hooksTimeout bounds the wait, when a connection is dropped, for
	// rueidis to close its hooks' error channel.
	hooksTimeout = 5 * time.Second
)

var errSubscriptionClosed = fmt.Errorf("rueidisadapter: subscription is closed: %w", net.ErrClosed)

// Subscribe pins one connection with Client.Dedicate and receives its
// messages through Pub/Sub hooks (DedicatedClient.SetPubSubHooks), which
// rueidis calls from the connection's reading goroutine, one at a time.
// SUBSCRIBE and UNSUBSCRIBE are sent on that connection with Do; rueidis
// returns from Do on a SUBSCRIBE once the server confirmed it, and the
// server confirms a SUBSCRIBE only after it subscribed every channel the
// command names.
//
// rueidis pings the connection when it is idle and closes it when the
// server stops answering. When the connection breaks (the hooks' error
// channel fires), one goroutine of the subscription pins a new connection
// and subscribes it to every channel added and not removed, backing off
// from 1 ms to 1 s between failed attempts, until Close. Close closes the
// pinned connection rather than returning it to the pool.
//
// Over RESP2 (ClientOption.AlwaysRESP2, or a server without HELLO 3)
// rueidis runs Pub/Sub on a second connection of the pinned one, which it
// opens and closes along with it. On a cluster client the pinned
// connection goes to the node of the first SUBSCRIBE; PUBLISH reaches the
// subscribers of every node.
func (c *Conn) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	cl, err := c.use(ctx)
	if err != nil {
		return nil, err
	}
	if onMessage == nil {
		return nil, errors.New("rueidisadapter: Subscribe with a nil message handler")
	}
	stopCtx, cancel := context.WithCancel(context.Background())
	s := &subscription{
		conn:      c,
		client:    cl,
		onMessage: onMessage,
		sem:       make(chan struct{}, 1),
		stopCtx:   stopCtx,
		stop:      cancel,
		done:      make(chan struct{}),
		channels:  map[string]struct{}{},
		linked:    make(chan struct{}),
	}
	l, err := s.connect(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	s.link = l
	close(s.linked)
	go s.run(l)
	return s, nil
}

// subscription is the driver.Subscription of Conn.Subscribe.
type subscription struct {
	conn      *Conn
	client    rueidis.Client
	onMessage func(channel, payload string)

	// sem serializes the commands sent on the connection, and the
	// changes of channels, with the SUBSCRIBE of a new connection: a
	// Remove cannot slip between the new connection's SUBSCRIBE and its
	// use, nor an Add be missed by it.
	sem chan struct{}

	stopCtx context.Context // cancelled by Close
	stop    context.CancelFunc
	done    chan struct{} // closed when the run goroutine has ended

	mu       sync.Mutex
	closed   bool
	link     *link         // the connection; nil while pinning a new one
	linked   chan struct{} // closed once link is set again
	channels map[string]struct{}
}

// link is one pinned connection with its hooks.
type link struct {
	dc   rueidis.DedicatedClient
	errs <-chan error  // the hooks' error channel: fires when the connection is gone
	gone chan struct{} // closed when the subscription has dropped it

	brokenOnce sync.Once
	broken     chan struct{} // closed by fail

	// The gate for onMessage: once off is set and running is false,
	// the hooks of this link never call onMessage again. mu is not held
	// while onMessage runs.
	mu      sync.Mutex
	off     bool
	running bool
	idle    chan struct{} // closed when onMessage returns after off was set
}

// fail reports that a command on the link failed in a way that only a
// broken connection explains, so that the subscription replaces it.
func (l *link) fail() { l.brokenOnce.Do(func() { close(l.broken) }) }

// deliver is the link's OnMessage hook.
func (l *link) deliver(onMessage func(channel, payload string)) func(rueidis.PubSubMessage) {
	return func(m rueidis.PubSubMessage) {
		l.mu.Lock()
		if l.off {
			l.mu.Unlock()
			return
		}
		l.running = true
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			l.running = false
			if l.idle != nil {
				close(l.idle)
				l.idle = nil
			}
			l.mu.Unlock()
		}()
		onMessage(m.Channel, m.Message)
	}
}

// silence closes the gate and waits for a running onMessage to return.
func (l *link) silence() {
	l.mu.Lock()
	l.off = true
	if !l.running {
		l.mu.Unlock()
		return
	}
	idle := make(chan struct{})
	l.idle = idle
	l.mu.Unlock()
	<-idle
}

// close closes the pinned connection (rueidis drops it rather than
// returning it to the pool), and returns once onMessage can no longer be
// called through it.
func (l *link) close() {
	l.dc.Close()
	l.silence()
	// rueidis closes errs when it stops calling the hooks. Waiting for
	// that lets its goroutines wind down before Close returns.
	t := time.NewTimer(hooksTimeout)
	defer t.Stop()
	for {
		select {
		case _, ok := <-l.errs:
			if ok {
				continue
			}
		case <-t.C:
		}
		return
	}
}

// connect pins a connection and sets its hooks. It does not subscribe.
func (s *subscription) connect(ctx context.Context) (*link, error) {
	dc, _, err := s.conn.dedicate(ctx, s.client) // dc.Close releases it too
	if err != nil {
		return nil, err
	}
	l := &link{dc: dc, gone: make(chan struct{}), broken: make(chan struct{})}
	l.errs = dc.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: l.deliver(s.onMessage)})
	// A connection that could not be made reports it at once.
	select {
	case err, ok := <-l.errs:
		if !ok || err == nil {
			err = errors.New("rueidisadapter: Pub/Sub hooks ended at once")
		}
		l.close()
		return nil, err
	default:
	}
	return l, nil
}

// acquire takes sem, unless ctx ends or the subscription closes first.
func (s *subscription) acquire(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopCtx.Done():
		return errSubscriptionClosed
	}
}

func (s *subscription) release() { <-s.sem }

// Add sends SUBSCRIBE and returns once the server confirmed it. While the
// connection is being replaced it waits for the new one, which subscribes
// to the channels too. An error reply (such as NOPERM) is returned as
// rueidis reports it, and the channels are not subscribed again later.
func (s *subscription) Add(ctx context.Context, channels ...string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if len(channels) == 0 {
		return nil
	}
	for {
		if err := s.acquire(ctx); err != nil {
			return err
		}
		s.mu.Lock()
		for _, ch := range channels {
			s.channels[ch] = struct{}{}
		}
		l, linked := s.link, s.linked
		s.mu.Unlock()
		if l == nil {
			s.release()
			select {
			case <-linked:
				continue
			case <-ctx.Done():
				return ctx.Err()
			case <-s.stopCtx.Done():
				return errSubscriptionClosed
			}
		}
		err := l.dc.Do(ctx, l.dc.B().Subscribe().Channel(channels...).Build()).Error()
		if _, ok := rueidis.IsRedisErr(err); ok {
			s.mu.Lock()
			for _, ch := range channels {
				delete(s.channels, ch)
			}
			s.mu.Unlock()
		}
		s.release()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case s.stopCtx.Err() != nil:
			return errSubscriptionClosed
		}
		if _, ok := rueidis.IsRedisErr(err); ok {
			return translate(err)
		}
		// The connection broke: wait for the next one.
		l.fail()
		select {
		case <-l.gone:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stopCtx.Done():
			return errSubscriptionClosed
		}
	}
}

// Remove sends UNSUBSCRIBE. A channel removed is not subscribed again on a
// new connection. When the connection is broken, Remove returns nil: the
// channels are gone with it.
func (s *subscription) Remove(ctx context.Context, channels ...string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if len(channels) == 0 {
		return nil
	}
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	s.mu.Lock()
	for _, ch := range channels {
		delete(s.channels, ch)
	}
	l := s.link
	s.mu.Unlock()
	if l == nil {
		return nil
	}
	err := l.dc.Do(ctx, l.dc.B().Unsubscribe().Channel(channels...).Build()).Error()
	switch _, redisErr := rueidis.IsRedisErr(err); {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case redisErr:
		return translate(err)
	}
	l.fail()
	return nil
}

// check reports why a call cannot start: a closed subscription or an
// ended context.
func (s *subscription) check(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errSubscriptionClosed
	}
	return ctx.Err()
}

// Close closes the pinned connection and waits until the subscription's
// goroutine has ended and onMessage can no longer be called. Calls after
// the first wait likewise and return nil.
func (s *subscription) Close() error {
	s.mu.Lock()
	closed := s.closed
	s.closed = true
	s.mu.Unlock()
	if !closed {
		s.stop()
	}
	<-s.done
	return nil
}

// drop takes l out of use and closes it.
func (s *subscription) drop(l *link) {
	s.mu.Lock()
	if s.link == l {
		s.link = nil
		s.linked = make(chan struct{})
	}
	s.mu.Unlock()
	close(l.gone)
	l.close()
}

// run is the goroutine that watches the connection and replaces it when
// it breaks, until Close.
func (s *subscription) run(l *link) {
	defer close(s.done)
	var wait backoff.Backoff
	for {
		start := time.Now()
		select {
		case <-l.errs: // an error, or closed: the hooks are done
		case <-l.broken:
		case <-s.stopCtx.Done():
		}
		s.drop(l)
		if s.stopCtx.Err() != nil {
			return
		}
		if time.Since(start) >= healthyAfter {
			wait.Reset()
		}
		for {
			if !wait.Wait(s.stopCtx.Done()) {
				return
			}
			var err error
			if l, err = s.relink(); err == nil {
				break
			}
		}
	}
}

// relink pins a new connection, subscribes it to every channel and puts it
// in use.
func (s *subscription) relink() (*link, error) {
	if err := s.acquire(s.stopCtx); err != nil {
		return nil, err
	}
	defer s.release()
	l, err := s.connect(s.stopCtx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	channels := make([]string, 0, len(s.channels))
	for ch := range s.channels {
		channels = append(channels, ch)
	}
	s.mu.Unlock()
	slices.Sort(channels)
	if len(channels) > 0 {
		// One SUBSCRIBE per channel, so that a channel the server
		// refuses now does not stop the others.
		multi := make([]rueidis.Completed, len(channels))
		for i, ch := range channels {
			multi[i] = l.dc.B().Subscribe().Channel(ch).Build()
		}
		ctx, cancel := context.WithTimeout(s.stopCtx, resubscribeTimeout)
		resps := l.dc.DoMulti(ctx, multi...)
		cancel()
		var refused []string
		for i, r := range resps {
			if err := r.Error(); err != nil {
				if _, ok := rueidis.IsRedisErr(err); !ok {
					s.drop(l)
					return nil, err
				}
				refused = append(refused, channels[i])
			}
		}
		s.mu.Lock()
		for _, ch := range refused {
			delete(s.channels, ch)
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.drop(l)
		return nil, errSubscriptionClosed
	}
	s.link = l
	close(s.linked)
	s.mu.Unlock()
	return l, nil
}

// Done is closed once Close was called: the subscription reconnects by
// itself until then.
func (s *subscription) Done() <-chan struct{} { return s.stopCtx.Done() }
