// Package radixadapter connects relock to Redis through
// github.com/mediocregopher/radix/v4.
//
// Wrap a client you built with [New]: a pool (radix.PoolConfig.New), a
// *radix.Cluster or a *radix.Sentinel. The client stays yours, and closing
// the relock client leaves it open:
//
//	dialer := radix.Dialer{AuthPass: "secret"}
//	pool, err := radix.PoolConfig{Dialer: dialer}.New(ctx, "tcp", "127.0.0.1:6379")
//	if err != nil {
//		return err
//	}
//	defer pool.Close()
//
//	locks, err := relock.New(radixadapter.New(pool, radixadapter.WithDialer(dialer)))
//
// Or let relock build and own the client from a URL (see [Driver.Open]);
// importing the package registers the driver under the name "radix":
//
//	import _ "github.com/relock-go/relock/adapters/radix"
//
//	locks, err := relock.Open("radix", "redis://127.0.0.1:6379/0")
//
// A [Conn] implements driver.Conn, driver.Scripter, driver.Watcher,
// driver.ReplicaWaiter, driver.Subscriber and driver.Validator.
//
// Each call takes a connection of its own from the pool, as radix does for
// a blocking command, instead of sharing one with concurrent calls: so the
// pool's Size bounds the calls in flight (radix's default is 4; size the
// pool for your concurrency). Watch and the script+WAIT of ReplicaWaiter
// keep that connection for their commands (radix.WithConn); a cluster
// routes them by their first key.
//
// A call ends at its context's deadline even against a server that stops
// answering: when the context ends while the call waits, the adapter closes
// the call's connection, which radix's pool then replaces. (radix alone
// reads the reply after a timed-out call with no deadline, which on a
// silent server blocks the next call on that connection for good.) A pool
// of your own may still stall against such a server through its periodic
// PING, which radix runs unguarded under a lock that every call needs: set
// PingInterval to -1 for a pool that must honour deadlines then, as Open
// does.
//
// Subscriptions dial a connection of their own with the radix.Dialer given
// by [WithDialer] (AUTH, SELECT, TLS), to the address of the client: its
// Addr, or the address of a primary for a cluster or sentinel client. A
// subscription does not reconnect: when its connection breaks, its Done
// channel closes and relock opens a new one.
//
// Replies and error replies are mapped as the relock/driver package
// documents; this package's own errors start with "relock/radix:".
package radixadapter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/mediocregopher/radix/v4"

	"github.com/relock-go/relock/driver"
)

// Errors returned by a Conn for misuse, checked with errors.Is.
var (
	// ErrNilClient reports a Conn made by New from a nil client (or a
	// typed nil such as (*radix.Cluster)(nil)).
	ErrNilClient = errors.New("relock/radix: nil client")

	// ErrClosed reports a call on a Conn after its Close.
	ErrClosed = errors.New("relock/radix: connection is closed")
)

// Client is the part of a radix client that a Conn uses: radix.Client (a
// Pool) and radix.MultiClient (*radix.Cluster, *radix.Sentinel) have it.
type Client interface {
	Do(ctx context.Context, a radix.Action) error
}

// Option configures a Conn made by New.
type Option func(*Conn)

// WithDialer sets the dialer of the connections that subscriptions use;
// give the one your pool's PoolConfig.Dialer has. Without it, a
// subscription dials with a zero radix.Dialer: no AUTH, no SELECT (channels
// do not depend on the database), no TLS.
func WithDialer(d radix.Dialer) Option {
	return func(c *Conn) {
		c.dial = func(ctx context.Context, network, addr string) (radix.Conn, error) {
			return d.Dial(ctx, network, addr)
		}
	}
}

// Compile-time checks of the interfaces this package promises.
var (
	_ driver.Conn          = (*Conn)(nil)
	_ driver.Scripter      = (*Conn)(nil)
	_ driver.Watcher       = (*Conn)(nil)
	_ driver.ReplicaWaiter = (*Conn)(nil)
	_ driver.Subscriber    = (*Conn)(nil)
	_ driver.Validator     = (*Conn)(nil)
	_ driver.Driver        = Driver{}
)

// Conn is a relock driver connection over a radix client. It is safe for
// concurrent use by many goroutines.
type Conn struct {
	client  Client
	lazy    *lazyClient // set by Open: builds the client on the first call
	dial    func(ctx context.Context, network, addr string) (radix.Conn, error)
	timeout time.Duration // Open's read_timeout: the longest a call waits
	closed  atomic.Bool
}

// New returns a Conn that runs commands on client. The caller keeps
// ownership of client: Conn.Close (and so relock.Client.Close) does not
// close it. When client is nil (or a typed nil), relock.New rejects the
// Conn with an error matching relock.ErrInvalidArgument and ErrNilClient,
// and every method of the Conn but Close fails with ErrNilClient.
func New(client Client, opts ...Option) *Conn {
	if v := reflect.ValueOf(client); client != nil && v.Kind() == reflect.Pointer && v.IsNil() {
		client = nil
	}
	c := &Conn{client: client}
	WithDialer(radix.Dialer{})(c)
	for _, o := range opts {
		o(c)
	}
	return c
}

// Validate implements driver.Validator: it reports ErrNilClient for a Conn
// made by New from a nil client. It sends nothing.
func (c *Conn) Validate() error {
	if c == nil || (c.client == nil && c.lazy == nil) {
		return ErrNilClient
	}
	return nil
}

// Close marks the Conn closed, after which its methods fail with
// ErrClosed. A Conn made by New leaves the user's client open; a Conn made
// by Driver.Open closes the client it built. Calls after the first return
// nil.
func (c *Conn) Close() error {
	if c.closed.Swap(true) || c.lazy == nil {
		return nil
	}
	return c.lazy.close()
}

// get returns the client to run a call on, checking the Conn and ctx.
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

// do runs one command and decodes its reply into rcv (nil: discarded).
// keys route it on a cluster.
func (c *Conn) do(ctx context.Context, keys []string, rcv any, args ...string) error {
	return c.run(ctx, &action{keys: keys, cmds: commands{args}, rcv: rcv})
}

// run runs a on a connection of its own from the client, within ctx and
// Open's read_timeout, and translates its error.
func (c *Conn) run(ctx context.Context, a radix.Action) error {
	client, err := c.get(ctx)
	if err != nil {
		return err
	}
	if c.timeout > 0 {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > c.timeout {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, c.timeout)
			defer cancel()
		}
	}
	return translate(ctx, client.Do(ctx, a))
}

// action is one command, or several pipelined, with its keys for a
// cluster's routing. It takes a connection of its own from a pool.
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

// encodeDecode sends m on conn and decodes the reply into u. When ctx
// ends before the reply came, it closes conn: radix would otherwise read
// that reply later with no deadline, and a silent server would block every
// later call on conn.
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

// SetNX runs SET key value NX PX ms, with ttl in whole milliseconds. It
// reports whether the key was set.
func (c *Conn) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	var r any
	if err := c.do(ctx, []string{key}, &r, "SET", key, value, "NX", "PX", fmt.Sprint(ttl.Milliseconds())); err != nil {
		return false, err
	}
	switch v, err := convert(r); {
	case err != nil:
		return false, err
	case v == nil:
		return false, nil
	case v == "OK":
		return true, nil
	}
	return false, fmt.Errorf("relock/radix: unexpected reply %T (%v) to SET NX", r, r)
}

// Get runs GET key. ok is false, and err nil, when the key does not exist.
func (c *Conn) Get(ctx context.Context, key string) (string, bool, error) {
	var r any
	if err := c.do(ctx, []string{key}, &r, "GET", key); err != nil {
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

// closedConn is what a call gets from radix on a connection or pool that
// was closed: radix's "closed", which relock then takes, as a network
// error, for "Redis did not answer".
type closedConn struct{ err error }

func (e closedConn) Error() string   { return "relock/radix: " + e.err.Error() }
func (e closedConn) Unwrap() []error { return []error{e.err, net.ErrClosed} }
