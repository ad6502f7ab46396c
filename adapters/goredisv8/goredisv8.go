// Package goredisv8 is the relock driver for go-redis v8
// (github.com/go-redis/redis/v8).
//
// [New] wraps a *redis.Client (also a failover client) or a
// *redis.ClusterClient that stays yours: closing the relock.Client leaves
// it open. Importing the package registers the driver "goredisv8" for
// relock.Open (see [Driver.Open]). [Conn] implements driver.Conn,
// Validator, Scripter, Watcher, ReplicaWaiter and Subscriber; replies and
// errors map through driver.ConvertReply and driver.WrapServerError.
//
// Every call returns when its context ends. go-redis v8 bounds each socket
// read and write by the context's deadline and closes the connection of a
// call whose context ends, but its default dialer makes the TLS handshake
// within DialTimeout whatever the context, and a cluster client reads the
// COMMAND table without the caller's context. So the calls of a client
// with a TLSConfig, of a cluster client and of any other kind run in a
// goroutine that the caller leaves when its context ends; the call ends
// within the client's timeouts and Close waits for it (10 s at most).
// Open's TLS clients dial with the context and need none.
//
// go-redis v8 retries a command after a network error (MaxRetries), so a
// SET NX whose reply was lost may answer "not set" while the key holds our
// token; relock reads the key after every "not set", so that is harmless.
//
// go-redis v8.11.5 cannot read Redis 7's CLUSTER SLOTS reply ("got 4
// elements in cluster info address"): set ClusterOptions.ClusterSlots to
// [ClusterSlots], as Open does.
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
)

func init() { relock.Register("goredisv8", Driver{}) }

// ErrNilClient reports a Conn over a nil client; ErrClosed, a call after
// Close.
var (
	ErrNilClient = errors.New("relock/goredisv8: nil client")
	ErrClosed    = errors.New("relock/goredisv8: connection is closed")
)

// Conn adapts a go-redis v8 client to relock's driver interfaces. It is
// safe for concurrent use, as the client is.
type Conn struct {
	rdb   redis.UniversalClient
	owned bool // Open made rdb: Close closes it
	guard bool // calls run in goroutines of their own (package doc)

	mu      sync.Mutex
	closed  bool
	running sync.WaitGroup // guarded calls, closing subscriptions
}

// New returns a Conn over rdb, which stays the caller's. relock.New
// rejects a Conn over a nil client (also a typed nil) with an error
// matching relock.ErrInvalidArgument and ErrNilClient.
func New(rdb redis.UniversalClient) *Conn {
	if v := reflect.ValueOf(rdb); rdb == nil || v.Kind() == reflect.Pointer && v.IsNil() {
		return &Conn{}
	}
	return newConn(rdb, false)
}

func newConn(rdb redis.UniversalClient, owned bool) *Conn {
	r, ok := rdb.(*redis.Client)
	return &Conn{rdb: rdb, owned: owned, guard: !ok || r.Options().TLSConfig != nil && !owned}
}

// Validate reports ErrNilClient for a Conn over a nil client.
func (c *Conn) Validate() error {
	if c == nil || c.rdb == nil {
		return ErrNilClient
	}
	return nil
}

func (c *Conn) client() (redis.UniversalClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.rdb == nil:
		return nil, ErrNilClient
	case c.closed:
		return nil, ErrClosed
	}
	return c.rdb, nil
}

// Close closes the client if Open made it, and waits (10 s at most) for
// the calls their callers left at their context's end. Later calls do
// nothing.
func (c *Conn) Close() error {
	c.mu.Lock()
	was := c.closed
	c.closed = true
	c.mu.Unlock()
	if was || c.rdb == nil {
		return nil
	}
	var err error
	if c.owned {
		err = c.rdb.Close() // also ends the calls left running
	}
	return errors.Join(err, c.waitRunning())
}

// SetNX runs SET key value NX PX ms and reports whether the key was set.
func (c *Conn) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	r, err := c.do(ctx, func(rdb redis.UniversalClient) (any, error) {
		return reply(rdb.Do(ctx, "set", key, value, "nx", "px", ttl.Milliseconds()).Result())
	})
	if err != nil || r == nil || r == "OK" {
		return r != nil, err
	}
	return false, fmt.Errorf("relock/goredisv8: unexpected reply %T (%v) to SET NX PX", r, r)
}

// Get runs GET key; ok is false, and err nil, when the key does not exist.
func (c *Conn) Get(ctx context.Context, key string) (value string, ok bool, err error) {
	v, err := c.do(ctx, func(rdb redis.UniversalClient) (any, error) { return reply(rdb.Get(ctx, key).Result()) })
	value, ok = v.(string)
	return value, ok, err
}

// do runs f on the client, guarded when the Conn's calls are.
func (c *Conn) do(ctx context.Context, f func(redis.UniversalClient) (any, error)) (any, error) {
	rdb, err := c.client()
	if err != nil {
		return nil, err
	}
	return call(ctx, c, func() (any, error) { return f(rdb) })
}
