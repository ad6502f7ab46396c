// Package goredisv8 is the relock driver for go-redis v8
// (github.com/go-redis/redis/v8), for programs that have not moved to
// go-redis v9 (adapters/goredis).
//
// Wrap a client you built with [New]: a *redis.Client (also the one
// redis.NewFailoverClient returns) or a *redis.ClusterClient. Closing the
// relock.Client leaves that client open: you built it, you close it.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	locker, err := relock.New(goredisv8.New(rdb))
//
// Importing the package also registers the driver as "goredisv8", so that
// relock.Open builds a client from a URL (see [Driver.Open]); that client
// is the relock.Client's, closed by its Close.
//
// # Deadlines
//
// Every call returns when its context ends. go-redis v8 applies a
// context's deadline to every socket read and write and closes the
// connection of a call whose context is cancelled, with three exceptions:
// its default dialer does a TLS handshake within DialTimeout whatever the
// context, a *redis.ClusterClient reads the COMMAND table without the
// caller's context, and a client of another kind is unknown. For those
// (a client with TLSConfig, a cluster client, any other UniversalClient)
// each call runs in a goroutine that the caller leaves when its context
// ends; the call left behind ends within the client's own timeouts, and
// Close waits for it (up to 10 s). The TLS clients Open builds dial with
// the context and need no goroutine.
//
// go-redis v8 retries a command after a network error (MaxRetries, 3 by
// default). A SET NX whose reply was lost and that is sent again answers
// "not set" although the key holds the caller's token: relock checks the
// key's value after such an answer, so the retry costs nothing there.
//
// # Behaviour
//
// [Conn] implements driver.Conn, driver.Validator, driver.Scripter,
// driver.Watcher, driver.ReplicaWaiter and driver.Subscriber. SetNX sends
// SET key value NX PX ms. Replies and server errors map to the driver
// package's shapes and sentinels through driver.ConvertReply and
// driver.WrapServerError; the go-redis error stays reachable with
// errors.As.
package goredisv8

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/go-redis/redis/v8"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

func init() { relock.Register("goredisv8", Driver{}) }

var (
	_ driver.Conn          = (*Conn)(nil)
	_ driver.Validator     = (*Conn)(nil)
	_ driver.Scripter      = (*Conn)(nil)
	_ driver.Watcher       = (*Conn)(nil)
	_ driver.ReplicaWaiter = (*Conn)(nil)
	_ driver.Subscriber    = (*Conn)(nil)
)

// Errors of a Conn used wrongly, checked with errors.Is.
var (
	// ErrNilClient reports a Conn that New made from a nil client.
	ErrNilClient = errors.New("relock/goredisv8: nil client")
	// ErrClosed reports a call on a Conn after its Close.
	ErrClosed = errors.New("relock/goredisv8: connection is closed")
)

// Conn adapts a go-redis v8 client to relock's driver interfaces. It is
// safe for concurrent use, as the client is.
type Conn struct {
	rdb   redis.UniversalClient
	owned bool // made by Open: Close closes rdb
	guard bool // calls run in a goroutine of their own: see "Deadlines"

	mu      sync.Mutex
	closed  bool
	running sync.WaitGroup // guarded calls and closing subscriptions
}

// New returns a Conn over rdb, which stays the caller's: the Conn's Close
// leaves it open. relock.New rejects a Conn over a nil client (also a
// typed nil) with an error matching relock.ErrInvalidArgument and
// ErrNilClient.
func New(rdb redis.UniversalClient) *Conn {
	if rdb == nil || reflect.ValueOf(rdb).Kind() == reflect.Pointer && reflect.ValueOf(rdb).IsNil() {
		return &Conn{}
	}
	return newConn(rdb, false)
}

// newConn returns a Conn over rdb; a client that Open built (owned) dials
// with the context.
func newConn(rdb redis.UniversalClient, owned bool) *Conn {
	guard := true
	if r, ok := rdb.(*redis.Client); ok {
		guard = r.Options().TLSConfig != nil && !owned
	}
	return &Conn{rdb: rdb, owned: owned, guard: guard}
}

// Validate reports ErrNilClient for a Conn over a nil client. It sends
// nothing.
func (c *Conn) Validate() error {
	if c == nil || c.rdb == nil {
		return ErrNilClient
	}
	return nil
}

// client returns the client, or why it may not be used.
func (c *Conn) client() (redis.UniversalClient, error) {
	if c.rdb == nil {
		return nil, ErrNilClient
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	return c.rdb, nil
}

// Close closes the client if Open made it, after waiting (up to 10 s) for
// the calls that their callers left at their context's end. Later calls
// return nil.
func (c *Conn) Close() error {
	if c.rdb == nil {
		return nil
	}
	c.mu.Lock()
	was := c.closed
	c.closed = true
	c.mu.Unlock()
	if was {
		return nil
	}
	var err error
	if c.owned {
		err = c.rdb.Close() // also ends the calls left running
	}
	if !waitFor(&c.running, closeWait) {
		err = errors.Join(err, fmt.Errorf("relock/goredisv8: calls left at their context's end still run %v after Close", closeWait))
	}
	return err
}

// SetNX runs SET key value NX PX ms and reports whether the key was set.
func (c *Conn) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	rdb, err := c.client()
	if err != nil {
		return false, err
	}
	r, err := call(ctx, c, func() (any, error) {
		return rdb.Do(ctx, "set", key, value, "nx", "px", ttl.Milliseconds()).Result()
	})
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, translate(err)
	case r == "OK":
		return true, nil
	}
	return false, fmt.Errorf("relock/goredisv8: unexpected reply %T (%v) to SET NX PX", r, r)
}

// Get runs GET key; ok is false, and err nil, when the key does not exist.
func (c *Conn) Get(ctx context.Context, key string) (value string, ok bool, err error) {
	rdb, err := c.client()
	if err != nil {
		return "", false, err
	}
	v, err := call(ctx, c, func() (any, error) { return reply(rdb.Get(ctx, key).Result()) })
	s, ok := v.(string)
	return s, ok, err
}
