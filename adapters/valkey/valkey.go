// Package valkeyadapter is the relock driver for github.com/valkey-io/valkey-go,
// a fork of rueidis, named so that it imports next to valkey:
//
//	c, err := valkey.NewClient(valkey.ClientOption{InitAddress: []string{"127.0.0.1:6379"}})
//	...
//	defer c.Close() // a client handed to New stays the caller's
//	locks, err := relock.New(valkeyadapter.New(c))
//
// Importing it registers the driver "valkey" for relock.Open (see
// [Driver.Open]). [Conn] implements driver.Conn, Validator, Scripter,
// Watcher, ReplicaWaiter and Subscriber. Replies go through
// driver.ConvertReply, error replies through driver.WrapServerError
// (errors.As still finds the *valkey.ValkeyError). On miniredis, which
// lacks CLIENT TRACKING and answers CLUSTER SLOTS, set DisableCache and
// ForceSingleClient.
package valkeyadapter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

func init() { relock.Register("valkey", Driver{}) }

var (
	_ driver.Validator     = (*Conn)(nil)
	_ driver.Scripter      = (*Conn)(nil)
	_ driver.Watcher       = (*Conn)(nil)
	_ driver.ReplicaWaiter = (*Conn)(nil)
	_ driver.Subscriber    = (*Conn)(nil)

	// ErrNilClient reports a Conn that New made from a nil client.
	ErrNilClient = errors.New("relock/valkey: nil valkey.Client")
	// ErrClosed reports a call after Close; it matches net.ErrClosed.
	ErrClosed = fmt.Errorf("relock/valkey: use of closed Conn: %w", net.ErrClosed)
)

// Conn is a relock driver connection over a valkey.Client, safe for
// concurrent use.
type Conn struct {
	client  valkey.Client
	lazy    *lazyClient // instead of client, for a Conn made by Driver.Open
	closed  atomic.Bool
	pinning sync.WaitGroup // goroutines left dialling, pinning or closing
}

// New returns a Conn over c, which stays the caller's: Conn.Close leaves
// it open. relock.New rejects a Conn made from a nil c (see Validate).
func New(c valkey.Client) *Conn {
	if v := reflect.ValueOf(c); c != nil && v.Kind() == reflect.Pointer && v.IsNil() {
		c = nil
	}
	return &Conn{client: c}
}

// Validate reports ErrNilClient for a Conn made from a nil client.
func (c *Conn) Validate() error {
	if c == nil || c.client == nil && c.lazy == nil {
		return ErrNilClient
	}
	return nil
}

func (c *Conn) use(ctx context.Context) (valkey.Client, error) {
	switch {
	case c.Validate() != nil:
		return nil, ErrNilClient
	case c.closed.Load():
		return nil, ErrClosed
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case c.client != nil:
		return c.client, nil
	}
	return c.lazy.get(ctx, &c.pinning)
}

// Close makes later calls fail, closes the client that Driver.Open made
// and waits for the goroutines left dialling, pinning or closing a
// connection (see pin), which valkey ends within its dial and write
// timeouts. It is safe to call more than once.
func (c *Conn) Close() error {
	if c == nil || c.closed.Swap(true) {
		return nil
	}
	if c.lazy != nil {
		c.lazy.close()
	}
	c.pinning.Wait()
	return nil
}

// pin pins a connection for Watch, the ReplicaWaiter calls and Subscribe.
// Client.Dedicate takes no context and may dial: it runs in a goroutine
// that gives the connection back if ctx ends first. unpin gives it back,
// or, broken (a command on it was left without its reply), closes it in
// the background: valkey would wait for the reply before reusing it, and
// waits a second for a silent peer's PING before closing it.
func (c *Conn) pin(ctx context.Context) (dc valkey.DedicatedClient, unpin func(broken bool), err error) {
	cl, err := c.use(ctx)
	if err != nil {
		return nil, nil, err
	}
	type pinned struct {
		dc      valkey.DedicatedClient
		release func()
	}
	got := make(chan pinned) // unbuffered: one side takes the connection
	c.pinning.Go(func() {
		dc, release := cl.Dedicate()
		select {
		case got <- pinned{dc, release}:
		case <-ctx.Done():
			release()
		}
	})
	select {
	case p := <-got:
		return p.dc, func(broken bool) {
			if broken {
				c.pinning.Go(p.dc.Close)
			} else {
				p.release()
			}
		}, nil
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

// SetNX runs SET key value NX PX ms and reports whether the key was set.
func (c *Conn) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	s, ok, err := getReply(c.do(ctx, func(b valkey.Builder) valkey.Completed {
		return b.Set().Key(key).Value(value).Nx().PxMilliseconds(ttl.Milliseconds()).Build()
	}))
	if ok && s != "OK" {
		err = fmt.Errorf("relock/valkey: SET NX replied %q", s)
	}
	return ok && err == nil, err
}

// Get runs GET key; a missing key gives ok == false and a nil error.
func (c *Conn) Get(ctx context.Context, key string) (string, bool, error) {
	return getReply(c.do(ctx, func(b valkey.Builder) valkey.Completed { return b.Get().Key(key).Build() }))
}

func getReply(r valkey.ValkeyResult) (string, bool, error) {
	s, err := r.ToString()
	if valkey.IsValkeyNil(err) {
		return "", false, nil
	}
	return s, err == nil, wrap(err)
}

type command = func(valkey.Builder) valkey.Completed

// do sends cmd with the client; a failure to get the client is the
// result's error.
func (c *Conn) do(ctx context.Context, cmd command) valkey.ValkeyResult {
	cl, err := c.use(ctx)
	if err != nil {
		return valkey.NewErrorResult(err)
	}
	return send(ctx, cl, cmd)
}

// send sends cmd with d, a failure to build it being the result's error.
func send(ctx context.Context, d valkey.CoreClient, cmd command) valkey.ValkeyResult {
	r, err := build(func() valkey.ValkeyResult { return d.Do(ctx, cmd(d.B())) })
	if err != nil {
		return valkey.NewErrorResult(err)
	}
	return r
}

// build runs f, turning a panic of valkey's command builder or of a
// cluster's dedicated client (keys of two slots, say) into an error.
func build[T any](f func() T) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("relock/valkey: cannot build or send the command: %v", p)
		}
	}()
	return f(), nil
}
