// Package valkeyadapter is the relock driver for github.com/valkey-io/valkey-go,
// named so that it imports next to valkey without an alias:
//
//	c, err := valkey.NewClient(valkey.ClientOption{InitAddress: []string{"127.0.0.1:6379"}})
//	...
//	defer c.Close() // a client handed to New stays the caller's
//	locks, err := relock.New(valkeyadapter.New(c))
//
// Importing it registers the driver "valkey" for relock.Open (see
// [Driver.Open]). [Conn] implements driver.Conn, Scripter (EVAL and EVALSHA;
// NOSCRIPT is relock's to handle), Watcher (WATCH on a connection pinned
// with Client.Dedicate, then MULTI, the commands and EXEC in one round
// trip), ReplicaWaiter (the script and WAIT pipelined on one pinned
// connection: on a cluster, the node of the script's keys) and Subscriber
// (one pinned connection that does not reconnect). Replies go through
// driver.ConvertReply and error replies through driver.WrapServerError,
// which keeps *valkey.ValkeyError for errors.As.
//
// Dedicate takes no context and may dial: it runs in a goroutine that the
// caller leaves when its context ends, and Close waits for it. Against
// miniredis, which lacks CLIENT TRACKING and answers CLUSTER SLOTS, set
// DisableCache and ForceSingleClient.
package valkeyadapter

import (
	"cmp"
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
)

var (
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
	pinning sync.WaitGroup // the Dedicate and NewClient calls running
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
	case c.client != nil:
		return c.client, nil
	}
	return c.lazy.get(ctx, &c.pinning)
}

// Close makes later calls fail, waits for the Dedicate calls that callers
// left (valkey ends them within its dial and write timeouts) and closes
// the client that Driver.Open made. It is safe to call more than once.
func (c *Conn) Close() error {
	if c == nil || c.closed.Swap(true) {
		return nil
	}
	if c.lazy != nil {
		c.lazy.close(&c.pinning)
	}
	c.pinning.Wait()
	return nil
}

// dedicate pins a connection with Dedicate in a goroutine, and returns
// ctx's error as soon as ctx ends: the goroutine then gives it back.
func (c *Conn) dedicate(ctx context.Context, cl valkey.Client) (valkey.DedicatedClient, func(), error) {
	if err := ctx.Err(); err != nil {
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
		return p.dc, p.release, nil
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

// SetNX runs SET key value NX PX ms and reports whether the key was set.
func (c *Conn) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	cl, err := c.use(ctx)
	if err != nil {
		return false, err
	}
	s, ok, err := getReply(cl.Do(ctx, cl.B().Set().Key(key).Value(value).Nx().PxMilliseconds(ttl.Milliseconds()).Build()))
	if ok && s != "OK" {
		err = fmt.Errorf("relock/valkey: SET NX replied %q", s)
	}
	return ok && err == nil, err
}

// Get runs GET key; a missing key gives ok == false and a nil error.
func (c *Conn) Get(ctx context.Context, key string) (string, bool, error) {
	cl, err := c.use(ctx)
	if err != nil {
		return "", false, err
	}
	return getReply(cl.Do(ctx, cl.B().Get().Key(key).Build()))
}

func getReply(r valkey.ValkeyResult) (string, bool, error) {
	s, err := r.ToString()
	if valkey.IsValkeyNil(err) {
		return "", false, nil
	}
	return s, err == nil, wrap(err)
}

// Watch pins a connection, runs WATCH keys... on it and calls fn with a Tx
// on it. Unless fn ran EXEC, the connection gets UNWATCH before it goes
// back to the pool.
func (c *Conn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	cl, err := c.use(ctx)
	switch {
	case err != nil:
		return err
	case fn == nil || len(keys) == 0:
		return errors.New("relock/valkey: Watch needs a function and at least one key")
	}
	dc, release, err := c.dedicate(ctx, cl)
	if err != nil {
		return err
	}
	defer release()
	t := &tx{dc: dc}
	defer t.finish(ctx)
	r, err := build(func() valkey.ValkeyResult { return dc.Do(ctx, dc.B().Watch().Key(keys...).Build()) })
	if err != nil || r.Error() != nil {
		return cmp.Or(err, wrap(r.Error()))
	}
	return fn(t)
}

// tx is the Tx of one Watch. Once Watch returned, valkey fails its calls
// with ErrDedicatedClientRecycled.
type tx struct {
	dc    valkey.DedicatedClient
	execd bool // EXEC dropped the watch
}

// finish sends UNWATCH unless EXEC dropped the watch, within a second even
// after ctx ended. Should the connection break instead, valkey drops it.
func (t *tx) finish(ctx context.Context) {
	if !t.execd {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		t.dc.Do(uctx, t.dc.B().Unwatch().Build())
	}
}

func (t *tx) Get(ctx context.Context, key string) (string, bool, error) {
	r, err := build(func() valkey.ValkeyResult { return t.dc.Do(ctx, t.dc.B().Get().Key(key).Build()) })
	if err != nil {
		return "", false, err
	}
	return getReply(r)
}

// Exec sends MULTI, cmds and EXEC in one round trip.
func (t *tx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	resps, err := build(func() []valkey.ValkeyResult {
		multi := []valkey.Completed{t.dc.B().Multi().Build()}
		for _, cmd := range cmds {
			multi = append(multi, t.dc.B().Arbitrary(cmd...).Build())
		}
		return t.dc.DoMulti(ctx, append(multi, t.dc.B().Exec().Build())...)
	})
	if err != nil {
		return nil, err
	}
	exec := resps[len(resps)-1]
	err = exec.Error()
	t.execd = err == nil || valkey.IsValkeyNil(err)
	if valkey.IsValkeyNil(err) {
		return nil, driver.ErrTxAborted
	}
	for _, r := range resps { // a network error, or the first error reply
		if err := r.Error(); err != nil {
			return nil, wrap(err)
		}
	}
	v, err := result(exec)
	if out, ok := v.([]any); err != nil || ok && len(out) == len(cmds) {
		return out, err
	}
	return nil, fmt.Errorf("relock/valkey: EXEC replied %v to %d commands", v, len(cmds))
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
