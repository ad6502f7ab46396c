// Package radixadapter connects relock to Redis through
// github.com/mediocregopher/radix/v4. Wrap a client you built (a pool, a
// *radix.Cluster, a *radix.Sentinel) with [New]; it stays yours, and
// closing the relock client leaves it open:
//
//	pool, err := radix.PoolConfig{Dialer: dialer, Size: 16}.New(ctx, "tcp", "127.0.0.1:6379")
//	locks, err := relock.New(radixadapter.New(pool, radixadapter.WithDialer(dialer)))
//
// Or let relock build and own one from a URL: relock.Open("radix",
// "redis://127.0.0.1:6379/0") once the package is imported (see
// [Driver.Open]).
//
// Each call takes a connection of its own from the pool (as radix does for
// blocking commands), so the pool's Size bounds the calls in flight. When
// a call's context ends before its reply, the adapter closes that
// connection, which the pool replaces: radix alone would read the late
// reply with no deadline, and a silent server would block every later call
// on it. A pool of your own should not PING in the background
// (PingInterval: -1): radix runs that PING unguarded, under a lock every
// call needs, and against a silent server it can stall the pool past any
// deadline. Watch and ReplicaWaiter keep one connection (radix.WithConn),
// routed by the first key on a cluster. A subscription dials its own
// connection with the dialer of [WithDialer] and does not reconnect.
package radixadapter

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/mediocregopher/radix/v4"

	"github.com/relock-go/relock/driver"
)

var (
	// ErrNilClient reports a Conn made by New from a nil (or typed nil)
	// client.
	ErrNilClient = errors.New("relock/radix: nil client")
	// ErrClosed reports a call on a Conn after its Close.
	ErrClosed = errors.New("relock/radix: connection is closed")
)

// Client is what a Conn needs of a radix client: radix.Client (a pool) and
// radix.MultiClient (*radix.Cluster, *radix.Sentinel) have it.
type Client interface {
	Do(ctx context.Context, a radix.Action) error
}

// Option configures a Conn made by New.
type Option func(*Conn)

// WithDialer sets the dialer (AUTH, SELECT, TLS) of the connections that
// subscriptions dial, to the client's Addr or, for a cluster or sentinel
// client, to a primary's; give the one your PoolConfig has. The default is
// a zero radix.Dialer.
func WithDialer(d radix.Dialer) Option {
	return func(c *Conn) { c.dial = d.Dial }
}

var (
	_ driver.Conn          = (*Conn)(nil)
	_ driver.Scripter      = (*Conn)(nil)
	_ driver.Watcher       = (*Conn)(nil)
	_ driver.ReplicaWaiter = (*Conn)(nil)
	_ driver.Subscriber    = (*Conn)(nil)
	_ driver.Validator     = (*Conn)(nil)
)

// Conn is a relock driver connection over a radix client, safe for
// concurrent use.
type Conn struct {
	client  Client
	lazy    *opened // Open's: its client is made on the first call
	dial    func(ctx context.Context, network, addr string) (radix.Conn, error)
	timeout time.Duration // Open's read_timeout + write_timeout: caps a call
	closed  atomic.Bool
}

// New returns a Conn that runs commands on client, which Close leaves
// open. A nil client makes relock.New fail with ErrNilClient.
func New(client Client, opts ...Option) *Conn {
	if v := reflect.ValueOf(client); client != nil && v.Kind() == reflect.Pointer && v.IsNil() {
		client = nil
	}
	c := &Conn{client: client, dial: radix.Dialer{}.Dial}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Validate reports ErrNilClient for a Conn over a nil client.
func (c *Conn) Validate() error {
	if c.client == nil && c.lazy == nil {
		return ErrNilClient
	}
	return nil
}

// Close makes later calls fail with ErrClosed; a Conn made by Open closes
// its client too.
func (c *Conn) Close() error {
	if c.closed.Swap(true) || c.lazy == nil {
		return nil
	}
	return c.lazy.close()
}

func (c *Conn) get(ctx context.Context) (Client, error) {
	switch {
	case c.closed.Load():
		return nil, ErrClosed
	case c.lazy != nil:
		return c.lazy.get(ctx)
	case c.client == nil:
		return nil, ErrNilClient
	}
	return c.client, ctx.Err()
}

// run runs a on the client within ctx (and Open's timeouts).
func (c *Conn) run(ctx context.Context, a radix.Action) error {
	if dl, ok := ctx.Deadline(); c.timeout > 0 && (!ok || time.Until(dl) > c.timeout) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	client, err := c.get(ctx)
	if err == nil {
		err = client.Do(ctx, a)
	}
	return translate(ctx, err)
}

// action is one command, or a pipeline, on a connection of its own; keys
// route it on a cluster.
type action struct {
	keys []string
	cmds commands
	rcv  any
}

func (a *action) Properties() radix.ActionProperties {
	return radix.ActionProperties{Keys: a.keys, CanRetry: true}
}

func (a *action) Perform(ctx context.Context, conn radix.Conn) error {
	return encodeDecode(ctx, conn, a.cmds, a.rcv)
}

// encodeDecode is conn.EncodeDecode that closes conn when ctx ends first.
func encodeDecode(ctx context.Context, conn radix.Conn, m, u any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	err := conn.EncodeDecode(ctx, m, u)
	if !stop() && err == nil {
		err = ctx.Err() // the reply came, but conn is closed
	}
	return err
}

// SetNX runs SET key value NX PX ttl.
func (c *Conn) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	var r any
	if err := c.run(ctx, &action{[]string{key}, commands{{"SET", key, value, "NX", "PX", fmt.Sprint(ttl.Milliseconds())}}, &r}); err != nil {
		return false, err
	}
	if v, err := convert(r); err != nil || v == nil || v == "OK" {
		return v == "OK", err
	}
	return false, fmt.Errorf("relock/radix: unexpected reply %T (%v) to SET NX", r, r)
}

// Get runs GET key; ok is false for a missing key.
func (c *Conn) Get(ctx context.Context, key string) (string, bool, error) {
	var r any
	if err := c.run(ctx, &action{[]string{key}, commands{{"GET", key}}, &r}); err != nil {
		return "", false, err
	}
	return getReply(r)
}

func getReply(r any) (string, bool, error) {
	v, err := convert(r)
	if s, ok := v.(string); ok || (v == nil && err == nil) {
		return s, ok, nil
	}
	if err == nil {
		err = fmt.Errorf("relock/radix: unexpected reply %T (%v) to GET", r, r)
	}
	return "", false, err
}
