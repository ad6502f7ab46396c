// Package goredis is the relock driver for go-redis v9
// (github.com/redis/go-redis/v9).
//
// Wrap a client you built, any redis.UniversalClient, with [New]; closing
// the relock.Client leaves it open. Importing the package also registers
// the driver as "goredis", for relock.Open, whose client it builds from a
// URL ([Driver.Open]) and closes:
//
//	locker, err := relock.New(goredis.New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})))
//	locker, err := relock.Open("goredis", "redis://127.0.0.1:6379/0")
//
// [Conn] implements driver.Conn, Scripter, Watcher, Subscriber,
// ReplicaWaiter and Validator. SetNX sends SET key value NX PX ms, never
// EX. Replies, RESP2 or RESP3, are mapped by driver.ConvertReply (a RESP3
// big number becomes its text) and error replies by driver.WrapServerError:
// go-redis's error stays reachable with errors.As.
//
// # Deadlines
//
// Every call returns when its context ends. go-redis applies a context's
// deadline to its sockets only with Options.ContextTimeoutEnabled (Open
// sets it). Without it, or for a context that has a cancellation but no
// deadline, a call runs on a worker goroutine that the caller leaves when
// the context ends. The call ends within the client's timeouts; Close
// waits for it, up to the read and write timeouts (3 s each at least) and
// a second, at most 10 s.
//
// # Waiting for replicas
//
// EvalShaWait and EvalWait send the script and WAIT on one connection of a
// *redis.Client: pipelined, or, when the WAIT timeout exceeds half the
// ReadTimeout (within which go-redis reads a pipeline), one after the
// other on a connection pinned with Client.Conn. A *redis.ClusterClient
// sends them to the primary of the first key's slot (MasterForKey); if the
// slot moved, the call fails with the MOVED error, having run nothing, and
// the slot map is reloaded. Other clients, and a cluster call without
// keys, fail at once with errors.ErrUnsupported and relock.ErrUnsupported.
package goredis

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

func init() { relock.Register("goredis", Driver{}) }

var (
	_ driver.Conn          = (*Conn)(nil)
	_ driver.Scripter      = (*Conn)(nil)
	_ driver.Watcher       = (*Conn)(nil)
	_ driver.Subscriber    = (*Conn)(nil)
	_ driver.ReplicaWaiter = (*Conn)(nil)
	_ driver.Validator     = (*Conn)(nil)
)

// Errors a Conn returns for misuse, checked with errors.Is.
var (
	// ErrNilClient reports a Conn that New made from a nil client
	// (including a typed nil such as (*redis.Client)(nil)).
	ErrNilClient = errors.New("relock/goredis: nil client")

	// ErrClosed reports a call on a Conn after its Close.
	ErrClosed = errors.New("relock/goredis: connection is closed")
)

// Conn adapts a go-redis client to relock's driver interfaces. It is safe
// for concurrent use, as the client is.
type Conn struct {
	rdb    redis.UniversalClient
	owned  bool // Close closes rdb
	closed atomic.Bool
	g      *guard
}

// New returns a Conn over rdb, which the caller keeps owning. For a nil rdb
// (or a typed nil) relock.New fails with relock.ErrInvalidArgument and
// ErrNilClient, and every method but Close fails with ErrNilClient.
func New(rdb redis.UniversalClient) *Conn {
	if v := reflect.ValueOf(rdb); rdb == nil || v.Kind() == reflect.Pointer && v.IsNil() {
		return &Conn{}
	}
	return &Conn{rdb: rdb, g: newGuard(rdb)}
}

// Validate reports ErrNilClient for a Conn made from a nil client.
func (c *Conn) Validate() error {
	if c == nil || c.rdb == nil {
		return ErrNilClient
	}
	return nil
}

// client returns the client, or why it may not be used.
func (c *Conn) client() (redis.UniversalClient, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	return c.rdb, c.Validate()
}

// Close closes the client if Open made it, never one given to New. It
// waits for the calls left at their context's end (see "Deadlines"), and
// reports those still running then. Later calls return nil.
func (c *Conn) Close() error {
	if c.rdb == nil || c.closed.Swap(true) {
		return nil
	}
	var err error
	if c.owned {
		err = c.rdb.Close() // ends the calls left running at once
	}
	return errors.Join(err, c.g.drain())
}

// SetNX runs SET key value NX PX ms. It reports false, nil when the key
// existed.
func (c *Conn) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	rdb, err := c.client()
	if err != nil {
		return false, err
	}
	r, err := call(ctx, c.g, func() (any, error) {
		return rdb.Do(ctx, "set", key, value, "nx", "px", ttl.Milliseconds()).Result()
	})
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, wrap(err)
	case r != "OK":
		return false, fmt.Errorf("relock/goredis: unexpected reply %T (%v) to SET NX PX", r, r)
	}
	return true, nil
}

// Get runs GET key. ok is false, and err nil, when the key does not exist.
func (c *Conn) Get(ctx context.Context, key string) (string, bool, error) {
	rdb, err := c.client()
	if err != nil {
		return "", false, err
	}
	return got(call(ctx, c.g, func() (string, error) { return rdb.Get(ctx, key).Result() }))
}
