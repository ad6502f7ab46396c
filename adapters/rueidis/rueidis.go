// Package rueidisadapter is the relock driver for github.com/redis/rueidis
// (the name lets it be imported next to rueidis without an alias):
//
//	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{"127.0.0.1:6379"}})
//	...
//	locks, err := relock.New(rueidisadapter.New(c)) // c stays the caller's to close
//
// Importing it registers the driver "rueidis" for relock.Open (see
// [Driver.Open]). [Conn] implements driver.Conn, Scripter, Watcher,
// ReplicaWaiter, Subscriber and Validator. EvalSha reports NOSCRIPT as
// driver.ErrNoScript and leaves the fallback to relock. Watch, the
// ReplicaWaiter calls and Subscribe pin a connection with Client.Dedicate,
// which takes no context and may dial: it runs in a goroutine that the
// caller leaves when its context ends, and a pinned connection on which a
// command was left without its reply is closed in the background, not
// reused. Close waits for those goroutines, which rueidis ends within its
// Dialer.Timeout and ConnWriteTimeout.
//
// Replies go through RedisMessage.ToAny and driver.ConvertReply, error
// replies through driver.WrapServerError (errors.As still finds the
// *rueidis.RedisError, whose text drops a leading "ERR "). rueidis retries
// only read-only commands (GET); SET NX, scripts and transactions go out
// at most once per call. The adapter never reads through the client-side
// cache: Driver.Open turns it off. On miniredis, which lacks CLIENT
// TRACKING and answers CLUSTER SLOTS, set DisableCache and
// ForceSingleClient.
package rueidisadapter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

func init() { relock.Register("rueidis", Driver{}) }

var (
	_ driver.Conn          = (*Conn)(nil)
	_ driver.Scripter      = (*Conn)(nil)
	_ driver.Watcher       = (*Conn)(nil)
	_ driver.ReplicaWaiter = (*Conn)(nil)
	_ driver.Subscriber    = (*Conn)(nil)
	_ driver.Validator     = (*Conn)(nil)
	_ driver.Driver        = Driver{}
)

var (
	// ErrNilClient reports a call on a Conn made from a nil client.
	ErrNilClient = errors.New("relock/rueidis: nil rueidis.Client")
	// ErrClosed reports a call after Close; it matches net.ErrClosed.
	ErrClosed = fmt.Errorf("relock/rueidis: use of closed Conn: %w", net.ErrClosed)
)

// Conn is a relock driver connection over a rueidis.Client, safe for
// concurrent use as the client is.
type Conn struct {
	client  rueidis.Client
	lazy    *lazyClient // instead of client, for a Conn made by Driver.Open
	closed  atomic.Bool
	pinning sync.WaitGroup // goroutines left dialling, pinning or closing
}

// New returns a Conn over c. The caller keeps c and closes it after the
// last use: Conn.Close leaves it open. A nil c (or an interface holding a
// nil pointer) makes relock.New fail with ErrNilClient, and every method
// but Close fail with it.
func New(c rueidis.Client) *Conn {
	if c != nil {
		if v := reflect.ValueOf(c); v.Kind() == reflect.Pointer && v.IsNil() {
			c = nil
		}
	}
	return &Conn{client: c}
}

// Validate reports ErrNilClient for a Conn made from a nil client.
func (c *Conn) Validate() error {
	if c == nil || (c.client == nil && c.lazy == nil) {
		return ErrNilClient
	}
	return nil
}

// use returns the client to send commands with: a Conn made by
// Driver.Open makes it on first use, within ctx.
func (c *Conn) use(ctx context.Context) (rueidis.Client, error) {
	switch {
	case c.Validate() != nil:
		return nil, ErrNilClient
	case c.closed.Load():
		return nil, ErrClosed
	case c.client != nil:
		return c.client, nil
	}
	return c.lazy.get(ctx, c)
}

// Close makes later calls fail, closes the client if Driver.Open made it,
// and waits, 15 s at most, for the goroutines left dialling, pinning or
// closing connections. It is safe to call more than once.
func (c *Conn) Close() error {
	if c == nil || c.closed.Swap(true) {
		return nil
	}
	if c.lazy != nil {
		c.background(c.lazy.close)
	}
	done := make(chan struct{})
	go func() { c.pinning.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(15 * time.Second):
		return errors.New("relock/rueidis: Close gave up waiting for connections left dialling or closing")
	}
}

// background runs f in a goroutine that Close waits for.
func (c *Conn) background(f func()) {
	c.pinning.Add(1)
	go func() { defer c.pinning.Done(); f() }()
}

// dedicate pins one connection of cl with Client.Dedicate, which takes no
// context and may dial, in a goroutine that the caller leaves when ctx
// ends and that then gives the connection back.
func (c *Conn) dedicate(ctx context.Context, cl rueidis.Client) (rueidis.DedicatedClient, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	type pinned struct {
		dc      rueidis.DedicatedClient
		release func()
	}
	got, left := make(chan pinned, 1), make(chan struct{})
	c.background(func() {
		dc, release := cl.Dedicate()
		select {
		case got <- pinned{dc, release}:
		case <-left:
			release()
		}
	})
	select {
	case p := <-got:
		return p.dc, p.release, nil
	case <-ctx.Done():
		close(left)
		select { // it may have sent just now
		case p := <-got:
			p.release()
		default:
		}
		return nil, nil, ctx.Err()
	}
}

// unpin gives a pinned connection back, or closes it in the background
// when a command on it was left without its reply (broken): rueidis would
// wait for the reply before reusing it, and up to a second to close it.
func (c *Conn) unpin(dc rueidis.DedicatedClient, release func(), broken bool) {
	if broken {
		c.background(dc.Close)
	} else {
		release()
	}
}

// SetNX runs SET key value NX PX ms, ttl rounded down to whole milliseconds.
func (c *Conn) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	cl, err := c.use(ctx)
	if err != nil {
		return false, err
	}
	err = cl.Do(ctx, cl.B().Set().Key(key).Value(value).Nx().PxMilliseconds(ttl.Milliseconds()).Build()).Error()
	if rueidis.IsRedisNil(err) {
		return false, nil
	}
	return err == nil, translate(err)
}

// Get runs GET key. A missing key gives ok == false and a nil error.
func (c *Conn) Get(ctx context.Context, key string) (string, bool, error) {
	cl, err := c.use(ctx)
	if err != nil {
		return "", false, err
	}
	return getReply(cl.Do(ctx, cl.B().Get().Key(key).Build()))
}

func getReply(r rueidis.RedisResult) (string, bool, error) {
	s, err := r.ToString()
	switch {
	case rueidis.IsRedisNil(err):
		return "", false, nil
	case err != nil:
		return "", false, translate(err)
	}
	return s, true, nil
}

// build runs f, turning a panic of the rueidis command builder (keys of
// several cluster slots, an Arbitrary SUBSCRIBE) into an error.
func build[T any](f func() T) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("relock/rueidis: cannot build or send the command: %v", p)
		}
	}()
	return f(), nil
}
