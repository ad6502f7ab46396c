// Package redigo connects relock to Redis through github.com/gomodule/redigo.
//
// Wrap a pool you built with [New]; the pool stays yours, and closing the
// relock client leaves it open:
//
//	pool := &redis.Pool{
//		MaxIdle: 16,
//		DialContext: func(ctx context.Context) (redis.Conn, error) {
//			return redis.DialContext(ctx, "tcp", "127.0.0.1:6379")
//		},
//	}
//	defer pool.Close()
//
//	locks, err := relock.New(redigo.New(pool))
//	if err != nil {
//		return err
//	}
//	lock, err := locks.Obtain(ctx, "report:daily", 30*time.Second)
//	if err != nil {
//		return err
//	}
//	defer lock.Release(ctx)
//
// Set MaxIdle: without it the pool closes every connection after each use,
// and each lock call dials anew (1,000 Obtain+Release pairs opened 2,001
// TCP connections; 2 with MaxIdle: 16). A pool without a dial function is
// rejected by relock.New.
//
// Or let relock build and own the pool from a redis:// URL (see
// [Driver.Open] for the options; Open does not dial, errors surface on the
// first call); importing the package registers the driver under the name
// "redigo":
//
//	import _ "github.com/relock-go/relock/adapters/redigo"
//
//	locks, err := relock.Open("redigo", "redis://127.0.0.1:6379/0")
//
// A [Conn] implements driver.Conn, driver.Scripter, driver.Watcher,
// driver.Subscriber (waiters are woken on hand-over), driver.ReplicaWaiter
// and driver.Validator. Every command takes a connection from the pool with
// GetContext, runs with redis.DoContext so that the caller's context bounds
// it, and returns the connection to the pool: a call ends at its context's
// deadline even on a pool without any timeout. A call with a context that
// never ends (context.Background()) waits as long as the pool's
// DialReadTimeout says, forever when it is not set. redigo bounds the TLS
// handshake of a pool you build by its own timer (10 s by default), not by
// the context; the pools Open builds bound it by the context too. Replies and errors are mapped
// as the relock/driver package documents.
//
// EvalShaWait and EvalWait send the script call and WAIT on one pooled
// connection (Send, Send, Flush, then redis.ReceiveContext for each reply),
// since WAIT counts only the writes of its own connection. Each reply is
// read within the context's deadline and within the pool's DialReadTimeout,
// if the dial function set one: keep that above the WAIT timeout, as for any
// blocking command in redigo, or the WAIT reply times out. The WAIT timeout
// must be positive; it goes out rounded up to whole milliseconds (WAIT 0
// would block forever).
package redigo

import (
	"context"
	"errors"
	"fmt"
	"os"
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
)

// Pool is where a Conn gets its connections. *redis.Pool satisfies it. Each
// connection GetContext returns is closed after use, which returns it to
// the pool.
type Pool interface {
	GetContext(ctx context.Context) (redis.Conn, error)
}

// Compile-time checks of the interfaces this package promises.
var (
	_ Pool            = (*redis.Pool)(nil)
	_ driver.Conn     = (*Conn)(nil)
	_ driver.Scripter = (*Conn)(nil)
	_ driver.Watcher  = (*Conn)(nil)
	_ driver.Tx       = (*tx)(nil)
	_ driver.Driver   = Driver{}

	_ driver.ReplicaWaiter = (*Conn)(nil)
	_ driver.Validator     = (*Conn)(nil)
)

// Conn is a relock driver connection over a redigo Pool. It is safe for
// concurrent use by many goroutines.
type Conn struct {
	pool   Pool
	owned  *redis.Pool // closed by Close; nil for a pool the user handed over
	closed atomic.Bool
}

// New returns a Conn that runs commands on connections from p, usually a
// *redis.Pool. The caller keeps ownership of p: Conn.Close (and so
// relock.Client.Close) does not close it. When p is nil (or a typed nil),
// relock.New rejects the Conn with an error matching
// relock.ErrInvalidArgument and ErrNilPool (see [Conn.Validate]), and every
// method of the Conn but Close fails with ErrNilPool.
func New(p Pool) *Conn {
	if isNil(p) {
		p = nil
	}
	return &Conn{pool: p}
}

// ErrNoDial reports a *redis.Pool with neither Dial nor DialContext set,
// which can never make a connection.
var ErrNoDial = errors.New("relock/redigo: pool has neither Dial nor DialContext")

// Validate implements driver.Validator: it reports ErrNilPool for a Conn
// made by New from a nil pool, and ErrNoDial for a *redis.Pool without a
// dial function. It sends nothing.
func (c *Conn) Validate() error {
	if c == nil || c.pool == nil {
		return ErrNilPool
	}
	if p, ok := c.pool.(*redis.Pool); ok && p.Dial == nil && p.DialContext == nil {
		return ErrNoDial
	}
	return nil
}

// isNil reports whether p is nil or an interface holding a nil pointer,
// map, func, channel or slice, whose methods would likely panic.
func isNil(p Pool) bool {
	if p == nil {
		return true
	}
	switch v := reflect.ValueOf(p); v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Func, reflect.Chan, reflect.Slice, reflect.Interface:
		return v.IsNil()
	}
	return false
}

// Close marks the Conn closed, after which its methods fail with
// ErrClosed. A Conn made by New leaves the user's pool open; a Conn made
// by Driver.Open closes the pool it built. Calls after the first return nil.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if c.owned != nil {
		return c.owned.Close()
	}
	return nil
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
	if err != nil {
		if rc != nil {
			_ = rc.Close()
		}
		return nil, translate(ctx, err)
	}
	if rc == nil {
		return nil, errors.New("relock/redigo: pool returned a nil connection")
	}
	return rc, nil
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

// do runs one command on rc, bounded by ctx, and translates its error. It
// sends nothing when ctx is already over, so the context's error is the
// one reported.
func do(ctx context.Context, rc redis.Conn, cmd string, args ...any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, err := redis.DoContext(rc, ctx, cmd, args...)
	if err != nil {
		return nil, translate(ctx, err)
	}
	return r, nil
}

// SetNX runs SET key value NX PX ms, with ttl in whole milliseconds. It
// reports whether the key was set.
func (c *Conn) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	r, err := c.do(ctx, "SET", key, value, "NX", "PX", ttl.Milliseconds())
	if err != nil {
		return false, err
	}
	return setReply(r)
}

func setReply(r any) (bool, error) {
	switch r := r.(type) {
	case nil:
		return false, nil
	case string:
		if r == "OK" {
			return true, nil
		}
	case []byte:
		if string(r) == "OK" {
			return true, nil
		}
	}
	return false, fmt.Errorf("relock/redigo: unexpected reply %T (%v) to SET NX", r, r)
}

// Get runs GET key. ok is false, and err nil, when the key does not exist.
func (c *Conn) Get(ctx context.Context, key string) (string, bool, error) {
	r, err := c.do(ctx, "GET", key)
	if err != nil {
		return "", false, err
	}
	return getReply(r)
}

func getReply(r any) (string, bool, error) {
	switch r := r.(type) {
	case nil:
		return "", false, nil
	case []byte:
		return string(r), true, nil
	case string:
		return r, true, nil
	}
	return "", false, fmt.Errorf("relock/redigo: unexpected reply %T (%v) to GET", r, r)
}

// Eval runs EVAL script numkeys keys... args... and returns the reply
// mapped as the relock/driver package documents.
func (c *Conn) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	return c.eval(ctx, "EVAL", script, keys, args)
}

// EvalSha runs EVALSHA sha1 numkeys keys... args.... When the server does
// not have the script it returns an error matching driver.ErrNoScript (and
// does not fall back to EVAL itself).
func (c *Conn) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	return c.eval(ctx, "EVALSHA", sha1, keys, args)
}

func (c *Conn) eval(ctx context.Context, cmd, script string, keys, args []string) (any, error) {
	r, err := c.do(ctx, cmd, evalArgs(script, keys, args)...)
	if err != nil {
		return nil, err
	}
	return normalize(ctx, r)
}

// evalArgs returns the arguments of EVAL or EVALSHA.
func evalArgs(script string, keys, args []string) []any {
	a := make([]any, 0, 2+len(keys)+len(args))
	a = append(a, script, len(keys))
	for _, k := range keys {
		a = append(a, k)
	}
	for _, v := range args {
		a = append(a, v)
	}
	return a
}

// EvalShaWait sends EVALSHA sha1 numkeys keys... args... and WAIT replicas
// timeout-in-ms on one connection of the pool, in one round trip, and
// returns the script's reply and the number of replicas that acknowledged
// the connection's writes. A script unknown to the server gives an error
// matching driver.ErrNoScript, whatever WAIT answered. When the script ran
// but WAIT failed, the error says so and the script's reply is returned with
// it.
func (c *Conn) EvalShaWait(ctx context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return c.evalWait(ctx, "EVALSHA", sha1, keys, args, replicas, timeout)
}

// EvalWait is EvalShaWait with EVAL script instead of EVALSHA.
func (c *Conn) EvalWait(ctx context.Context, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return c.evalWait(ctx, "EVAL", script, keys, args, replicas, timeout)
}

func (c *Conn) evalWait(ctx context.Context, cmd, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	ms, err := waitArgs(replicas, timeout)
	if err != nil {
		return nil, 0, err
	}
	rc, err := c.conn(ctx)
	if err != nil {
		return nil, 0, err
	}
	// Close reads any reply left unread (after a failure) before the
	// connection goes back to the pool, or drops a broken one.
	defer rc.Close()
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if err := rc.Send(cmd, evalArgs(script, keys, args)...); err != nil {
		return nil, 0, translate(ctx, err)
	}
	if err := rc.Send("WAIT", replicas, ms); err != nil {
		return nil, 0, translate(ctx, err)
	}
	if err := rc.Flush(); err != nil {
		return nil, 0, translate(ctx, err)
	}
	r, err := redis.ReceiveContext(rc, ctx)
	if err != nil {
		if !errors.As(err, new(redis.Error)) {
			return nil, 0, translate(ctx, err) // the connection is broken
		}
		// An error reply (NOSCRIPT, say): WAIT's reply still follows.
		_, _ = redis.ReceiveContext(rc, ctx)
		return nil, 0, translate(ctx, err)
	}
	w, werr := redis.ReceiveContext(rc, ctx)
	v, err := normalize(ctx, r)
	if err != nil {
		return nil, 0, err
	}
	if werr != nil {
		return v, 0, fmt.Errorf("relock/redigo: WAIT after the script: %w", translate(ctx, werr))
	}
	n, ok := w.(int64)
	if !ok {
		return v, 0, fmt.Errorf("relock/redigo: unexpected reply %T (%v) to WAIT", w, w)
	}
	return v, int(n), nil
}

// waitArgs checks the arguments of WAIT and returns its timeout in whole
// milliseconds, rounded up: a positive timeout below 1 ms must not become
// WAIT's 0, which blocks forever.
func waitArgs(replicas int, timeout time.Duration) (int64, error) {
	ms, err := driver.WaitTimeout(replicas, timeout)
	if err != nil {
		return 0, fmt.Errorf("relock/redigo: %w", err)
	}
	return ms, nil
}

// normalize maps a redigo reply to the values the driver package promises:
// nil, int64, string or []any of these. An error reply nested in an array
// becomes the returned error.
func normalize(ctx context.Context, r any) (any, error) {
	switch r := r.(type) {
	case nil, int64, string:
		return r, nil
	case []byte:
		return string(r), nil
	case redis.Error:
		return nil, translate(ctx, r)
	case []any:
		out := make([]any, len(r))
		for i, v := range r {
			n, err := normalize(ctx, v)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	}
	return nil, fmt.Errorf("relock/redigo: unexpected reply type %T (%v)", r, r)
}

// serverError is a Redis error reply that also matches a driver sentinel.
// Its text is the server's.
type serverError struct {
	sentinel error
	reply    redis.Error
}

func (e *serverError) Error() string   { return string(e.reply) }
func (e *serverError) Unwrap() []error { return []error{e.sentinel, e.reply} }

// translate maps err to what the driver contract asks: NOSCRIPT replies
// match driver.ErrNoScript, WRONGTYPE replies (also those raised inside a
// script) match driver.ErrWrongType, and when ctx is over its error stays
// visible through errors.Is.
func translate(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var re redis.Error
	if errors.As(err, &re) {
		// driver.ReplyKind classifies the reply's text (NOSCRIPT,
		// WRONGTYPE, also raised inside a script) as every adapter does.
		if kind := driver.ReplyKind(string(re)); kind != nil {
			return &serverError{sentinel: kind, reply: re}
		}
		return err
	}
	if cerr := ctxErr(ctx, err); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	return err
}

// ctxErr returns the error of ctx that caused err, if any. redigo sets the
// read deadline of a call to the context's deadline, so the read can time
// out an instant before ctx reports DeadlineExceeded; that network timeout
// counts as the context's.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) && errors.Is(err, os.ErrDeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return nil
}

// Watch takes one connection from the pool, runs WATCH keys... on it and
// calls fn with a Tx bound to that connection. It returns fn's error (or
// WATCH's). When fn returns without a completed EXEC, Watch runs UNWATCH
// before the connection goes back to the pool.
func (c *Conn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) (err error) {
	rc, err := c.conn(ctx)
	if err != nil {
		return err
	}
	t := &tx{rc: rc}
	defer func() {
		t.done = true
		if t.watching && rc.Err() == nil {
			// Bounded even when ctx is over: a connection must not go
			// back to the pool still watching keys.
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unwatchTimeout)
			_, uerr := redis.DoContext(rc, uctx, "UNWATCH")
			cancel()
			if uerr != nil && err == nil {
				err = translate(ctx, uerr)
			}
		}
		_ = rc.Close()
	}()
	a := make([]any, len(keys))
	for i, k := range keys {
		a[i] = k
	}
	t.watching = true
	if _, err := do(ctx, rc, "WATCH", a...); err != nil {
		return err
	}
	return fn(t)
}

// unwatchTimeout bounds the UNWATCH that Watch sends after fn.
const unwatchTimeout = time.Second

// tx is the driver.Tx of one Watch call. It is not safe for concurrent use
// and must not be used after fn returns.
type tx struct {
	rc       redis.Conn
	watching bool // the server may still hold a watch or MULTI state
	done     bool
}

var errTxDone = errors.New("relock/redigo: Tx used after its Watch function returned")

// Get runs GET key on the pinned connection.
func (t *tx) Get(ctx context.Context, key string) (string, bool, error) {
	if t.done {
		return "", false, errTxDone
	}
	r, err := do(ctx, t.rc, "GET", key)
	if err != nil {
		return "", false, err
	}
	return getReply(r)
}

// Exec pipelines MULTI, cmds and EXEC on the pinned connection and returns
// the normalized replies of cmds.
func (t *tx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	if t.done {
		return nil, errTxDone
	}
	for i, cmd := range cmds {
		if len(cmd) == 0 {
			return nil, fmt.Errorf("relock/redigo: empty command %d in transaction", i)
		}
	}
	// Nothing may be queued on the connection unless EXEC goes out too.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := t.rc.Send("MULTI"); err != nil {
		return nil, translate(ctx, err)
	}
	for _, cmd := range cmds {
		a := make([]any, len(cmd)-1)
		for i, s := range cmd[1:] {
			a[i] = s
		}
		if err := t.rc.Send(cmd[0], a...); err != nil {
			return nil, translate(ctx, err)
		}
	}
	// DoContext flushes the queue and reads every reply; it returns EXEC's
	// reply and the first error reply among them (a command refused while
	// queuing, then EXECABORT).
	r, err := redis.DoContext(t.rc, ctx, "EXEC")
	if err == nil || errors.As(err, new(redis.Error)) {
		// The server answered EXEC: the transaction and the watch are over.
		t.watching = false
	}
	if err != nil {
		return nil, translate(ctx, err)
	}
	switch r := r.(type) {
	case nil:
		return nil, driver.ErrTxAborted
	case []any:
		out := make([]any, len(r))
		for i, v := range r {
			n, err := normalize(ctx, v)
			if err != nil {
				return nil, fmt.Errorf("relock/redigo: transaction command %d (%s): %w", i, cmds[i][0], err)
			}
			out[i] = n
		}
		return out, nil
	}
	return nil, fmt.Errorf("relock/redigo: unexpected reply %T (%v) to EXEC", r, r)
}
