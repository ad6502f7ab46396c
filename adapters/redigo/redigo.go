// Package redigo connects relock to Redis through github.com/gomodule/redigo.
//
// Wrap a *redis.Pool of yours with [New] (relock.Client.Close leaves it
// open), or let relock build and own one from a URL with
// relock.Open("redigo", "redis://127.0.0.1:6379/0") (see [Driver.Open]):
//
//	pool := &redis.Pool{MaxIdle: 16, DialContext: func(ctx context.Context) (redis.Conn, error) {
//		return redis.DialContext(ctx, "tcp", "127.0.0.1:6379")
//	}}
//	locks, err := relock.New(redigo.New(pool))
//
// Set MaxIdle, or the pool dials anew for every call. A [Conn] implements
// driver.Conn, Scripter, Watcher, Subscriber, ReplicaWaiter and Validator.
// Every command takes a connection with GetContext and runs with
// redis.DoContext, so the caller's context bounds it even on a pool
// without timeouts (the connections must implement redis.ConnWithContext,
// as the pool's do); a context that never ends waits as long as
// DialReadTimeout says. redigo bounds the TLS handshake of your pool by
// its own timer; Open's pools bound it by the context too. EvalShaWait and
// EvalWait pipeline the script and WAIT on one connection, since WAIT
// counts only its connection's writes: keep DialReadTimeout above the WAIT
// timeout.
package redigo

import (
	"context"
	"errors"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/relock-go/relock/driver"
)

// Errors returned by a Conn for misuse, checked with errors.Is.
var (
	// ErrNilPool reports a call on a Conn made by New from a nil Pool
	// (including a typed nil such as (*redis.Pool)(nil)).
	ErrNilPool = errors.New("relock/redigo: nil pool")
	// ErrClosed reports a call on a Conn after its Close.
	ErrClosed = errors.New("relock/redigo: connection is closed")
	// ErrNoDial reports a *redis.Pool with neither Dial nor DialContext.
	ErrNoDial = errors.New("relock/redigo: pool has neither Dial nor DialContext")
)

// Pool is where a Conn gets its connections; *redis.Pool satisfies it.
// Each connection taken is closed after use, which gives it back.
type Pool interface {
	GetContext(ctx context.Context) (redis.Conn, error)
}

var (
	_ Pool                 = (*redis.Pool)(nil)
	_ driver.Conn          = (*Conn)(nil)
	_ driver.Scripter      = (*Conn)(nil)
	_ driver.Watcher       = (*Conn)(nil)
	_ driver.ReplicaWaiter = (*Conn)(nil)
	_ driver.Subscriber    = (*Conn)(nil)
	_ driver.Validator     = (*Conn)(nil)
)

// Conn is a relock driver connection over a redigo Pool. It is safe for
// concurrent use.
type Conn struct {
	pool   Pool
	owned  *redis.Pool // closed by Close; nil for a pool the user handed over
	closed atomic.Bool
}

// New returns a Conn that runs commands on connections from p. The caller
// keeps p: Conn.Close (and so relock.Client.Close) leaves it open. With a
// nil p (or a typed nil), relock.New rejects the Conn (see
// [Conn.Validate]) and every method but Close fails with ErrNilPool.
func New(p Pool) *Conn {
	if p != nil {
		switch v := reflect.ValueOf(p); v.Kind() {
		case reflect.Pointer, reflect.Map, reflect.Func, reflect.Chan, reflect.Slice, reflect.Interface:
			if v.IsNil() {
				p = nil
			}
		}
	}
	return &Conn{pool: p}
}

// Validate reports ErrNilPool for a Conn made from a nil pool, and
// ErrNoDial for a *redis.Pool without a dial function. It sends nothing.
func (c *Conn) Validate() error {
	if c == nil || c.pool == nil {
		return ErrNilPool
	}
	if p, ok := c.pool.(*redis.Pool); ok && p.Dial == nil && p.DialContext == nil {
		return ErrNoDial
	}
	return nil
}

// Close marks the Conn closed, after which its methods fail with
// ErrClosed. It closes the pool only when Driver.Open built it. Calls
// after the first return nil.
func (c *Conn) Close() error {
	if c.closed.Swap(true) || c.owned == nil {
		return nil
	}
	return c.owned.Close()
}

// conn takes a connection from the pool. The caller must close it.
func (c *Conn) conn(ctx context.Context) (redis.Conn, error) {
	switch {
	case c.closed.Load():
		return nil, ErrClosed
	case c.pool == nil:
		return nil, ErrNilPool
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rc, err := c.pool.GetContext(ctx)
	if err == nil && rc == nil {
		err = errors.New("relock/redigo: pool returned a nil connection")
	}
	return rc, translate(ctx, err)
}

// do runs one command on a connection from the pool.
func (c *Conn) do(ctx context.Context, cmd string, args ...any) (any, error) {
	rc, err := c.conn(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return do(ctx, rc, cmd, args...)
}

// do runs one command on rc within ctx; it sends nothing when ctx is over.
func do(ctx context.Context, rc redis.Conn, cmd string, args ...any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, err := redis.DoContext(rc, ctx, cmd, args...)
	return r, translate(ctx, err)
}

// SetNX runs SET key value NX PX ms and reports whether the key was set
// (OK, rather than nil).
func (c *Conn) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	r, err := c.do(ctx, "SET", key, value, "NX", "PX", ttl.Milliseconds())
	return r != nil && err == nil, err
}

// Get runs GET key. ok is false, and err nil, when the key does not exist.
func (c *Conn) Get(ctx context.Context, key string) (string, bool, error) {
	return getReply(c.do(ctx, "GET", key))
}
