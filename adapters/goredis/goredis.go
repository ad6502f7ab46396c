// Package goredis is the relock driver for go-redis v9
// (github.com/redis/go-redis/v9).
//
// Wrap a client you built yourself with [New]; it works with every
// redis.UniversalClient (a single-node *redis.Client, a failover client, a
// *redis.ClusterClient or a *redis.Ring):
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	defer rdb.Close()
//
//	locker, err := relock.New(goredis.New(rdb))
//	if err != nil {
//		return err
//	}
//	lock, err := locker.Obtain(ctx, "report:42", 10*time.Second)
//	if err != nil {
//		return err // errors.Is(err, relock.ErrNotObtained) when it is taken
//	}
//	defer lock.Release(ctx)
//
// Closing the relock.Client leaves rdb open: you built it, you close it.
//
// Importing the package also registers the driver under the name "goredis",
// so that relock.Open can build a client from a redis:// or rediss:// URL
// (see [Driver.Open] for the forms: single node, cluster, sentinel). That
// relock.Client owns its go-redis client and closes it on Close:
//
//	import _ "github.com/relock-go/relock/adapters/goredis"
//
//	locker, err := relock.Open("goredis", "redis://127.0.0.1:6379/0")
//
// Open does not contact the server: errors surface on the first call.
//
// # Deadlines
//
// Every call returns when its context ends, whatever the client's
// settings. go-redis applies a context's deadline to its sockets only with
// Options.ContextTimeoutEnabled (the clients Open makes have it); otherwise
// it waits for ReadTimeout (3 s by default), and retries. New checks the
// client's options: for a *redis.Client, *redis.ClusterClient or
// *redis.Ring with ContextTimeoutEnabled, calls with a deadline run as they
// are. Otherwise (and for a context that can be cancelled but has no
// deadline, which go-redis never applies to a socket, and for a
// UniversalClient of another kind) each call runs in a goroutine of its
// own, which the caller leaves when the context ends, with the context's
// error. The call left behind ends by itself within the client's
// timeouts (go-redis retries no more once the context is done); Close
// waits for such calls, up to the client's read and write timeouts and a
// second (at most 10 s), and then reports those still running. A context
// that can never end (context.Background()) costs no goroutine. Setting
// ContextTimeoutEnabled on your client avoids the goroutine per call.
//
// # Behaviour
//
// [Conn] implements driver.Conn, driver.Scripter, driver.Watcher,
// driver.Subscriber (waiters are woken on hand-over), driver.ReplicaWaiter
// and driver.Validator, so relock uses Lua scripts. SetNX sends exactly SET
// key value NX PX ms: unlike go-redis's own SetNX, which switches to EX for
// whole seconds, it always keeps millisecond precision.
//
// # Waiting for replicas
//
// EvalShaWait and EvalWait pipeline the script call and WAIT in one
// Client.Pipelined round trip, which a single-node client (a *redis.Client,
// including the one redis.NewFailoverClient returns) sends on one pooled
// connection, as WAIT needs: it counts only the writes of its own
// connection. go-redis reads a pipeline's replies within the client's
// ReadTimeout, whatever the commands, so when the WAIT timeout exceeds half
// the ReadTimeout the two commands go out one after the other, on one
// connection pinned with Client.Conn, where WAIT gets go-redis's allowance
// for blocking commands (its timeout plus 10 s): two round trips instead of
// one. Either way the client's hooks see both commands.
//
// On a *redis.ClusterClient the two go the same way through the client of
// the primary that serves the first key's slot (ClusterClient.MasterForKey),
// so WAIT counts that primary's replicas. That node client follows no
// redirection: if the slot has moved (a failover the cluster client has not
// seen yet), the call fails with the MOVED error, having run nothing, and
// the cluster client is asked to reload its slot map, so a later call goes
// to the new primary. A *redis.Ring would send the keyless WAIT to a shard
// of its own choosing, and another UniversalClient may do anything with a
// pipeline: for those the two methods fail, before sending anything, with
// an error matching both errors.ErrUnsupported and relock.ErrUnsupported.
// The timeout must be positive; it goes out rounded up to whole
// milliseconds (WAIT 0 would block forever).
//
// go-redis v9 speaks RESP3 by default, and a script may then produce RESP3
// types: booleans (after redis.setresp(3)), doubles, maps, sets, big numbers
// and verbatim strings. Replies are normalised to the types the driver
// package allows, as a RESP2 connection would see them: false becomes nil,
// true becomes int64(1), a double becomes its decimal text (as %.17g), a big
// number its decimal text, a map an array of keys and values (sorted by key,
// since go-redis hands maps over unordered) and a set an array. An error
// reply nested inside an array fails the whole call with that error.
//
// Errors keep the server's text. NOSCRIPT replies match driver.ErrNoScript
// and WRONGTYPE replies match driver.ErrWrongType through errors.Is, both
// for plain commands and when a script's redis.call raised WRONGTYPE (Redis 7
// reports that as "WRONGTYPE ... script: ...", older Redis and miniredis as
// "ERR Error ... script ...: WRONGTYPE ..."). The go-redis error stays
// reachable with errors.As, and context errors stay visible to errors.Is.
package goredis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

func init() { relock.Register("goredis", Driver{}) }

var (
	_ driver.Driver   = Driver{}
	_ driver.Conn     = (*Conn)(nil)
	_ driver.Scripter = (*Conn)(nil)
	_ driver.Watcher  = (*Conn)(nil)
	_ driver.Tx       = (*tx)(nil)

	_ driver.ReplicaWaiter = (*Conn)(nil)
	_ driver.Validator     = (*Conn)(nil)
)

// Conn adapts a go-redis client to relock's driver interfaces. It is safe for
// concurrent use by many goroutines, as the client is.
type Conn struct {
	rdb    redis.UniversalClient
	owned  bool
	closed atomic.Bool

	// guard is set when the client does not apply a context's deadline to
	// its sockets (ContextTimeoutEnabled off, or a client of unknown
	// kind): calls then run in a goroutine of their own, which the caller
	// leaves when its context ends. See "Deadlines" in the package doc.
	guard bool
	// abandoned counts the guarded calls still running, whether or not
	// their caller left them; Close waits for them.
	abandoned sync.WaitGroup
	// abandonWait bounds that wait in Close.
	abandonWait time.Duration

	// Guarded calls run on worker goroutines that stay for workerIdle
	// after their last call, so that a call does not pay for a new
	// goroutine and its stack's growth: idle hands a call to a waiting
	// worker; stop, closed by Close, sends the waiting ones away.
	idle     chan func()
	stop     chan struct{}
	workerMu sync.Mutex // orders starting a worker against Close
	stopped  bool       // under workerMu: Close has begun
	workers  sync.WaitGroup
	spawned  atomic.Int64 // workers started, for the tests
}

// workerIdle is how long a worker waits for another guarded call before it
// exits: long enough for a caller's next call in a busy loop, short enough
// that a Conn nobody closes keeps no goroutine for long.
const workerIdle = 100 * time.Millisecond

// Errors a Conn returns for misuse, checked with errors.Is.
var (
	// ErrNilClient reports a call on a Conn that New made from a nil
	// client (including a typed nil such as (*redis.Client)(nil)).
	ErrNilClient = errors.New("goredis: nil client")

	// ErrClosed reports a call on a Conn after its Close.
	ErrClosed = errors.New("goredis: connection is closed")
)

// New returns a Conn over rdb, a client the caller built and keeps owning:
// closing the Conn (or the relock.Client over it) leaves rdb open. When rdb
// is nil (or a typed nil such as (*redis.Client)(nil)), relock.New rejects
// the Conn with an error matching relock.ErrInvalidArgument and ErrNilClient
// (see [Conn.Validate]), and every method of the Conn but Close fails with
// ErrNilClient.
func New(rdb redis.UniversalClient) *Conn {
	if isNil(rdb) {
		return &Conn{}
	}
	return newConn(rdb, false)
}

// newConn returns a Conn over rdb, which it closes if owned.
func newConn(rdb redis.UniversalClient, owned bool) *Conn {
	honours, wait := deadlineSettings(rdb)
	return &Conn{rdb: rdb, owned: owned, guard: !honours, abandonWait: wait,
		idle: make(chan func()), stop: make(chan struct{})}
}

// maxAbandonWait caps how long Close waits for calls abandoned at their
// context's end.
const maxAbandonWait = 10 * time.Second

// deadlineSettings reports whether rdb applies a context's deadline to its
// sockets (ContextTimeoutEnabled), and how long a call left running past
// its context's end may still take: the client's read and write timeouts
// and a second, at most maxAbandonWait.
func deadlineSettings(rdb redis.UniversalClient) (honours bool, abandonWait time.Duration) {
	var read, write time.Duration
	switch r := rdb.(type) {
	case *redis.Client: // also what NewFailoverClient returns
		o := r.Options()
		honours, read, write = o.ContextTimeoutEnabled, o.ReadTimeout, o.WriteTimeout
	case *redis.ClusterClient: // also what NewFailoverClusterClient returns
		o := r.Options()
		honours, read, write = o.ContextTimeoutEnabled, o.ReadTimeout, o.WriteTimeout
	case *redis.Ring:
		o := r.Options()
		honours, read, write = o.ContextTimeoutEnabled, o.ReadTimeout, o.WriteTimeout
	default:
		return false, maxAbandonWait
	}
	if read <= 0 || write <= 0 { // no socket deadline, or go-redis's defaults
		read, write = max(read, 3*time.Second), max(write, 3*time.Second)
	}
	return honours, min(read+write+time.Second, maxAbandonWait)
}

// guarded reports whether a call with ctx must run in a goroutine of its
// own so that its caller can leave it when ctx ends: when ctx can end and
// the client would not end the call itself (it ignores deadlines, or ctx
// has only a cancellation, which go-redis never applies to a socket).
func (c *Conn) guarded(ctx context.Context) bool {
	if ctx.Done() == nil {
		return false
	}
	if _, ok := ctx.Deadline(); !ok {
		return true
	}
	return c.guard
}

// result is what a guarded call returns.
type result[T any] struct {
	v   T
	err error
}

// call runs f, in a goroutine of its own when c.guarded(ctx), and returns
// its result, or ctx's error as soon as ctx ends. An abandoned f keeps
// running until the client's own timeouts (or the client's Close) end it;
// Conn.Close waits for it. f must not touch anything its caller reads
// after call returns.
func call[T any](ctx context.Context, c *Conn, f func() (T, error)) (T, error) {
	if !c.guarded(ctx) {
		return f()
	}
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	done := make(chan result[T], 1)
	c.abandoned.Add(1)
	c.goRun(func() {
		defer c.abandoned.Done()
		v, err := f()
		done <- result[T]{v, err}
	})
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// goRun runs task on a worker goroutine: a waiting one, or a new one
// that then waits up to workerIdle for the next task (until Close).
func (c *Conn) goRun(task func()) {
	select {
	case c.idle <- task:
		return
	default:
	}
	c.workerMu.Lock()
	if c.stopped {
		c.workerMu.Unlock()
		go task() // a call racing with Close: no worker to keep
		return
	}
	c.workers.Add(1)
	c.workerMu.Unlock()
	c.spawned.Add(1)
	go c.work(task)
}

// work runs task, then the tasks handed to it while it waits, until it has
// waited workerIdle or Close stops it.
func (c *Conn) work(task func()) {
	defer c.workers.Done()
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		task()
		t.Reset(workerIdle)
		select {
		case task = <-c.idle:
		case <-t.C:
			return
		case <-c.stop:
			return
		}
	}
}

// stopWorkers sends the waiting workers away; a worker still running a
// call leaves once it is done.
func (c *Conn) stopWorkers() {
	c.workerMu.Lock()
	if !c.stopped && c.stop != nil {
		c.stopped = true
		close(c.stop)
	}
	c.workerMu.Unlock()
}

// isNil reports whether v is nil or an interface holding a nil pointer.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// Validate implements driver.Validator: it reports ErrNilClient for a Conn
// made by New from a nil client. It sends nothing.
func (c *Conn) Validate() error {
	if c == nil || c.rdb == nil {
		return ErrNilClient
	}
	return nil
}

// client returns the client, or why it may not be used.
func (c *Conn) client() (redis.UniversalClient, error) {
	switch {
	case c.closed.Load():
		return nil, ErrClosed
	case c.rdb == nil:
		return nil, ErrNilClient
	}
	return c.rdb, nil
}

// Close closes the go-redis client if this Conn made it (Driver.Open), and
// does nothing to a client handed to New. Only the first call does anything;
// later calls return nil.
//
// Close first waits for the calls that their callers left at their
// context's end (see "Deadlines" in the package doc) to finish, for up to
// the client's read and write timeouts and a second (at most 10 s). Calls
// still running then are reported in the error; they end with the client's
// own timeouts, or when the client is closed.
func (c *Conn) Close() error {
	if c.closed.Swap(true) || c.rdb == nil {
		return nil
	}
	c.stopWorkers()
	if c.owned {
		// Closing the client ends the abandoned calls at once.
		err := c.rdb.Close()
		c.abandoned.Wait()
		c.workers.Wait()
		return err
	}
	done := make(chan struct{})
	go func() {
		c.abandoned.Wait()
		close(done)
	}()
	t := time.NewTimer(c.abandonWait)
	defer t.Stop()
	select {
	case <-done:
		c.workers.Wait() // every call is done: the workers are leaving
		return nil
	case <-t.C:
		return fmt.Errorf("goredis: calls left at their context's end still run %v after Close; they end with the client's timeouts or its Close", c.abandonWait)
	}
}

// SetNX runs SET key value NX PX ms, with ttl in whole milliseconds. It
// reports false, nil when the key already existed.
func (c *Conn) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	rdb, err := c.client()
	if err != nil {
		return false, err
	}
	r, err := call(ctx, c, func() (any, error) {
		return rdb.Do(ctx, "set", key, value, "nx", "px", ttl.Milliseconds()).Result()
	})
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, translate(err)
	}
	if s, ok := r.(string); ok && s == "OK" {
		return true, nil
	}
	return false, fmt.Errorf("goredis: unexpected reply %T (%v) to SET NX PX", r, r)
}

// Get runs GET key. ok is false, and err nil, when the key does not exist.
func (c *Conn) Get(ctx context.Context, key string) (string, bool, error) {
	rdb, err := c.client()
	if err != nil {
		return "", false, err
	}
	r, err := call(ctx, c, func() (getResult, error) {
		v, ok, err := get(ctx, rdb, key)
		return getResult{v, ok}, err
	})
	return r.v, r.ok, err
}

// getResult is what get returns besides its error.
type getResult struct {
	v  string
	ok bool
}

// Eval runs EVAL script numkeys keys... args... and returns the reply
// mapped as the driver package says.
func (c *Conn) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	rdb, err := c.client()
	if err != nil {
		return nil, err
	}
	return call(ctx, c, func() (any, error) {
		return reply(rdb.Eval(ctx, script, keys, anys(args)...).Result())
	})
}

// EvalSha runs EVALSHA sha1 numkeys keys... args.... A script unknown to the
// server gives an error matching driver.ErrNoScript.
func (c *Conn) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	rdb, err := c.client()
	if err != nil {
		return nil, err
	}
	return call(ctx, c, func() (any, error) {
		return reply(rdb.EvalSha(ctx, sha1, keys, anys(args)...).Result())
	})
}

// EvalShaWait runs EVALSHA sha1 numkeys keys... args... and WAIT replicas
// timeout-in-ms pipelined on one connection, and returns the script's reply
// and the number of replicas that acknowledged the connection's writes. A
// script unknown to the server gives an error matching driver.ErrNoScript,
// whatever WAIT answered. When the script ran but WAIT failed, the error
// says so and the script's reply is returned with it. See the package doc
// for the clients it supports and for the timeout.
func (c *Conn) EvalShaWait(ctx context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return c.evalWait(ctx, true, sha1, keys, args, replicas, timeout)
}

// EvalWait is EvalShaWait with EVAL script instead of EVALSHA.
func (c *Conn) EvalWait(ctx context.Context, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return c.evalWait(ctx, false, script, keys, args, replicas, timeout)
}

// errWaitUnsupported is wrapped by the error of EvalShaWait and EvalWait on
// a client that cannot pipeline the script and WAIT on one connection.
var errWaitUnsupported = fmt.Errorf("%w: %w", relock.ErrUnsupported, errors.ErrUnsupported)

func (c *Conn) evalWait(ctx context.Context, sha bool, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	rdb, err := c.client()
	if err != nil {
		return nil, 0, err
	}
	ms, err := waitArgs(replicas, timeout)
	if err != nil {
		return nil, 0, err
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	type waitResult struct {
		v     any
		acked int
	}
	r, err := call(ctx, c, func() (waitResult, error) {
		v, acked, err := evalWait(ctx, rdb, sha, script, keys, args, replicas, ms)
		return waitResult{v, acked}, err
	})
	return r.v, r.acked, err
}

// evalWait sends the script and WAIT ms on one connection of rdb.
func evalWait(ctx context.Context, rdb redis.UniversalClient, sha bool, script string, keys, args []string, replicas int, ms int64) (_ any, _ int, err error) {
	timeout := time.Duration(ms) * time.Millisecond
	var client *redis.Client
	switch r := rdb.(type) {
	case *redis.Client:
		client = r
	case *redis.ClusterClient:
		if len(keys) == 0 {
			return nil, 0, fmt.Errorf("goredis: a script without keys has no node to WAIT on in a cluster: %w", errWaitUnsupported)
		}
		// The client of the node that serves the first key's slot, as
		// the cluster client sees it; both commands go to that node, on
		// one of its connections.
		node, nerr := r.MasterForKey(ctx, keys[0])
		if nerr != nil {
			return nil, 0, fmt.Errorf("goredis: the node for %q: %w", keys[0], translate(nerr))
		}
		client = node
		defer func() {
			// A node client follows no redirection: a MOVED means the
			// script did not run and the slot map is out of date.
			if movedErr(err) {
				r.ReloadState(ctx)
			}
		}()
	default:
		return nil, 0, fmt.Errorf("goredis: a script followed by WAIT needs a *redis.Client or *redis.ClusterClient, which send both to one connection; a %T may send WAIT elsewhere: %w", rdb, errWaitUnsupported)
	}
	evalCmd := func(ctx context.Context, c redis.Scripter) *redis.Cmd {
		if sha {
			return c.EvalSha(ctx, script, keys, anys(args)...)
		}
		return c.Eval(ctx, script, keys, anys(args)...)
	}
	var eval *redis.Cmd
	var acked func() (int64, error)
	// go-redis reads the replies of a pipeline within ReadTimeout,
	// whatever the commands, but gives a lone WAIT its own timeout plus
	// 10 s. So a WAIT that may outlast half the ReadTimeout goes out on
	// its own, after the script, on one connection pinned with Conn.
	if rt := client.Options().ReadTimeout; rt > 0 && timeout > rt/2 {
		cn := client.Conn()
		defer cn.Close()
		eval = evalCmd(ctx, cn)
		if err := eval.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return nil, 0, translate(err)
		}
		acked = cn.Wait(ctx, replicas, timeout).Result
	} else {
		var wait *redis.Cmd
		_, _ = client.Pipelined(ctx, func(p redis.Pipeliner) error {
			eval = evalCmd(ctx, p)
			wait = p.Do(ctx, "wait", replicas, ms)
			return nil
		}) // the first error of the two, which each command holds too
		acked = wait.Int64
	}
	v, err := reply(eval.Result())
	if err != nil {
		return nil, 0, err
	}
	n, err := acked()
	if err != nil {
		return v, 0, fmt.Errorf("goredis: WAIT after the script: %w", translate(err))
	}
	return v, int(n), nil
}

// movedErr reports whether err is a MOVED redirection, which a node's own
// client returns instead of following it.
func movedErr(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "MOVED ")
}

// waitArgs checks the arguments of WAIT and returns its timeout in whole
// milliseconds, rounded up: a positive timeout below 1 ms must not become
// WAIT's 0, which blocks forever.
func waitArgs(replicas int, timeout time.Duration) (int64, error) {
	ms, err := driver.WaitTimeout(replicas, timeout)
	if err != nil {
		return 0, fmt.Errorf("goredis: %w", err)
	}
	return ms, nil
}

// Watch runs fn inside go-redis's own Watch, which pins one connection and
// sends WATCH keys... on it. When fn returns without a transaction having
// run EXEC (or with an EXEC that failed to reach the server), go-redis sends
// UNWATCH before the connection goes back to the pool, even when ctx is
// already done; a connection broken meanwhile is dropped, not pooled. The
// Tx given to fn must not be used after fn returns.
//
// When calls are guarded (see "Deadlines" in the package doc), go-redis's
// Watch runs in a goroutine of its own and every command of the Tx is
// handed to it, while fn itself runs in the caller's goroutine: Watch and
// each Tx call return when ctx ends, and the goroutine finishes the
// command in flight and the UNWATCH by itself.
func (c *Conn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	rdb, err := c.client()
	if err != nil {
		return err
	}
	if c.guarded(ctx) {
		return c.guardedWatch(ctx, rdb, keys, fn)
	}
	var fnErr error
	called := false
	err = rdb.Watch(ctx, func(t *redis.Tx) error {
		called = true
		fnErr = fn(&tx{t: t})
		return fnErr
	}, keys...)
	if called && fnErr != nil {
		return fnErr
	}
	return translate(err)
}

// guardedWatch is Watch with go-redis's Watch in a goroutine that runs the
// Tx's commands, handed over one at a time.
func (c *Conn) guardedWatch(ctx context.Context, rdb redis.UniversalClient, keys []string, fn func(driver.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var (
		pinned  = make(chan *redis.Tx) // the goroutine's Tx, once WATCH ran
		ops     = make(chan func())    // commands to run on the pinned connection
		finish  = make(chan struct{})  // closed when fn returned, or Watch gave up
		watched = make(chan error, 1)  // go-redis's Watch returned
	)
	c.abandoned.Add(1)
	go func() {
		defer c.abandoned.Done()
		watched <- rdb.Watch(ctx, func(t *redis.Tx) error {
			select {
			case pinned <- t:
			case <-finish:
				return nil // the caller left before WATCH was answered
			}
			for {
				select {
				case op := <-ops:
					op()
				case <-finish:
					return nil
				}
			}
		}, keys...)
	}()
	var t *redis.Tx
	select {
	case t = <-pinned:
	case err := <-watched: // WATCH failed
		close(finish)
		return translate(err)
	case <-ctx.Done():
		close(finish)
		return ctx.Err()
	}
	x := &tx{t: t, ops: ops}
	fnErr := fn(x)
	x.done = true
	close(finish)
	if fnErr != nil {
		return fnErr
	}
	select {
	case err := <-watched:
		return translate(err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tx is the driver.Tx over a go-redis Tx, alive during one Watch callback.
type tx struct {
	t *redis.Tx
	// ops, when not nil, is where the commands go: to the goroutine of
	// a guarded Watch, which runs them on the pinned connection.
	ops  chan<- func()
	done bool // fn returned
}

// errTxDone reports a Tx used after the fn given to Watch returned.
var errTxDone = errors.New("goredis: Tx used after its Watch function returned")

// run runs op on the pinned connection: here, or in the goroutine of a
// guarded Watch, which the caller leaves when ctx ends. op must not touch
// anything its caller reads after run returned an error.
func (t *tx) run(ctx context.Context, op func()) error {
	if t.done {
		return errTxDone
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if t.ops == nil {
		op()
		return nil
	}
	ran := make(chan struct{})
	select {
	case t.ops <- func() { op(); close(ran) }:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ran:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Get runs GET key on the pinned connection. Like every call through a Tx,
// it does nothing and returns ctx's error when ctx is already done: the
// pinned connection, unlike the pool, does not look at ctx by itself.
func (t *tx) Get(ctx context.Context, key string) (string, bool, error) {
	var r result[getResult]
	if err := t.run(ctx, func() {
		v, ok, err := get(ctx, t.t, key)
		r = result[getResult]{getResult{v, ok}, err}
	}); err != nil {
		return "", false, err
	}
	return r.v.v, r.v.ok, r.err
}

// Exec runs MULTI, cmds and EXEC in one round trip through TxPipelined.
func (t *tx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	var r result[[]any]
	if err := t.run(ctx, func() {
		v, err := t.exec(ctx, cmds)
		r = result[[]any]{v, err}
	}); err != nil {
		return nil, err
	}
	return r.v, r.err
}

func (t *tx) exec(ctx context.Context, cmds [][]string) ([]any, error) {
	if len(cmds) == 0 {
		return nil, errors.New("goredis: Exec of a transaction with no commands")
	}
	for i, c := range cmds {
		if len(c) == 0 {
			return nil, fmt.Errorf("goredis: Exec: command %d is empty", i)
		}
	}
	done, err := t.t.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range cmds {
			p.Do(ctx, anys(c)...)
		}
		return nil
	})
	if errors.Is(err, redis.TxFailedErr) {
		return nil, &serverError{kind: driver.ErrTxAborted, err: err}
	}
	if len(done) != len(cmds) {
		if err == nil {
			err = fmt.Errorf("goredis: %d replies to a transaction of %d commands", len(done), len(cmds))
		}
		return nil, translate(err)
	}
	out := make([]any, len(done))
	for i, d := range done {
		cmd, ok := d.(*redis.Cmd)
		if !ok {
			return nil, fmt.Errorf("goredis: unexpected command type %T in a transaction", d)
		}
		v, cerr := reply(cmd.Result())
		if cerr != nil {
			return nil, cerr
		}
		out[i] = v
	}
	// Every command has its reply, yet the pipeline failed: only possible
	// for an error that concerns the whole transaction.
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, translate(err)
	}
	return out, nil
}

// getter is what Conn.Get and tx.Get need: a *redis.Tx or any client.
type getter interface {
	Get(ctx context.Context, key string) *redis.StringCmd
}

func get(ctx context.Context, g getter, key string) (string, bool, error) {
	v, err := g.Get(ctx, key).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return "", false, nil
	case err != nil:
		return "", false, translate(err)
	}
	return v, true, nil
}

func anys(ss []string) []any {
	a := make([]any, len(ss))
	for i, s := range ss {
		a[i] = s
	}
	return a
}

// reply maps the result of a go-redis *Cmd to the driver's reply types.
func reply(v any, err error) (any, error) {
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, translate(err)
	}
	return normalize(v)
}

// normalize maps a value that go-redis decoded from RESP2 or RESP3 to nil,
// int64, string or []any, the way a RESP2 connection would see it.
func normalize(v any) (any, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case int64:
		return v, nil
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	case int:
		return int64(v), nil
	case bool: // RESP3 boolean: Lua false/true after redis.setresp(3)
		if v {
			return int64(1), nil
		}
		return nil, nil
	case float64: // RESP3 double
		return formatDouble(v), nil
	case *big.Int: // RESP3 big number
		return v.String(), nil
	case []any: // array, RESP3 set
		out := make([]any, len(v))
		for i, e := range v {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case map[any]any: // RESP3 map
		type pair struct {
			sortKey string
			k, v    any
		}
		pairs := make([]pair, 0, len(v))
		for k, e := range v {
			nk, err := normalize(k)
			if err != nil {
				return nil, err
			}
			ne, err := normalize(e)
			if err != nil {
				return nil, err
			}
			pairs = append(pairs, pair{fmt.Sprint(nk), nk, ne})
		}
		sort.Slice(pairs, func(i, j int) bool { return pairs[i].sortKey < pairs[j].sortKey })
		out := make([]any, 0, 2*len(pairs))
		for _, p := range pairs {
			out = append(out, p.k, p.v)
		}
		return out, nil
	case error: // an error reply nested in an array
		return nil, translate(v)
	}
	return nil, fmt.Errorf("goredis: unexpected reply type %T (%v)", v, v)
}

// formatDouble renders f as Redis renders a double for RESP2 (%.17g).
func formatDouble(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	return strconv.FormatFloat(f, 'g', 17, 64)
}

// serverError is a server error reply that matches one of the driver's
// sentinels. Its text is the server's; errors.Is finds both the sentinel
// and the go-redis error, and errors.As the latter.
type serverError struct {
	kind error // driver.ErrNoScript, driver.ErrWrongType or driver.ErrTxAborted
	err  error
}

func (e *serverError) Error() string   { return e.err.Error() }
func (e *serverError) Unwrap() []error { return []error{e.kind, e.err} }

// translate is the one place where go-redis errors become driver errors:
// NOSCRIPT and WRONGTYPE server replies get their sentinel, everything else
// (network errors, timeouts, context errors, other replies) passes through
// unchanged. It is idempotent.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var done *serverError
	var moved *movedError
	if errors.As(err, &done) || errors.As(err, &moved) {
		return err
	}
	var re redis.Error
	if !errors.As(err, &re) {
		return err
	}
	// driver.ReplyKind classifies the reply's text (NOSCRIPT, WRONGTYPE,
	// also raised inside a script) as every adapter does.
	if kind := driver.ReplyKind(re.Error()); kind != nil {
		return &serverError{kind: kind, err: err}
	}
	if strings.HasPrefix(re.Error(), "MOVED ") {
		return &movedError{err}
	}
	return err
}

// movedError is a MOVED reply, with a hint: a plain client, such as the one
// Open builds from a URL with one address, talks to one node of a Redis
// Cluster and follows no redirection.
type movedError struct{ err error }

func (e *movedError) Error() string {
	return e.err.Error() + " (the server is a Redis Cluster node and the key lives on another one: give Open the other nodes with ?addr=host:port in the URL, which makes a cluster client, or pass goredis.New a *redis.ClusterClient)"
}
func (e *movedError) Unwrap() error { return e.err }
