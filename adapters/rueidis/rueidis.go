// Package rueidisadapter is the relock driver for github.com/redis/rueidis.
//
// The directory is adapters/rueidis, but the package is named
// rueidisadapter so that it can be imported next to rueidis itself without
// an alias:
//
//	import (
//		"github.com/redis/rueidis"
//		"github.com/relock-go/relock"
//		rueidisadapter "github.com/relock-go/relock/adapters/rueidis"
//	)
//
//	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{"127.0.0.1:6379"}})
//	if err != nil { ... }
//	defer c.Close()
//	locks, err := relock.New(rueidisadapter.New(c))
//	if err != nil { ... }
//	lock, err := locks.Obtain(ctx, "report:42", 10*time.Second)
//	if err != nil { ... }
//	defer lock.Release(ctx)
//
// (The explicit name in the import is optional: the package name already is
// rueidisadapter.) Importing the package also registers the driver
// "rueidis" with relock.Register, so that
//
//	locks, err := relock.Open("rueidis", "redis://127.0.0.1:6379/0")
//
// opens a client that relock owns and closes (see [Driver.Open] for the
// forms; Open does not dial, the client is made on the first call).
//
// Calls end when their context ends: rueidis applies contexts itself, and
// the adapter runs Client.Dedicate, which takes no context and may dial
// (Watch, EvalShaWait, Subscribe), in a goroutine that the caller leaves
// when its context ends; Close waits for such goroutines, which rueidis
// ends within its Dialer.Timeout and ConnWriteTimeout (at most 15 s).
//
// # What the adapter does
//
// [Conn] implements driver.Conn, driver.Scripter, driver.Watcher,
// driver.Subscriber (waiters are woken on hand-over) and
// driver.ReplicaWaiter. Every command is built with the rueidis command
// builder (Client.B()). Scripts run as plain EVALSHA and EVAL: unlike
// rueidis.Lua.Exec, EvalSha reports NOSCRIPT (as driver.ErrNoScript) and
// leaves the fallback to relock. Watch pins one connection with
// Client.Dedicate, runs WATCH on it, and sends MULTI, the commands and EXEC
// in one DoMulti round trip; a connection that fn leaves without EXEC gets
// UNWATCH before it goes back to the pool.
//
// EvalShaWait and EvalWait also pin one connection with Client.Dedicate and
// send the script call and WAIT on it in one DoMulti round trip, since WAIT
// counts only the writes of its own connection. (rueidis tags WAIT as a
// blocking command, so a plain Client.DoMulti holding it would also run on
// one connection of the blocking pool of a single-node client; but a cluster
// client splits a DoMulti by slot and would send the keyless WAIT to any
// node, and a single client with ConnLifetime may resend the tail of a
// DoMulti on another connection. A dedicated connection has neither problem:
// on a cluster it goes to the node of the script's keys.) Being blocking,
// WAIT also lifts rueidis's ConnWriteTimeout from that round trip, which is
// bounded by the context and by WAIT's own timeout. That timeout must be
// positive; it goes out rounded up to whole milliseconds (WAIT 0 would block
// forever).
//
// # Replies
//
// rueidis speaks RESP3 when the server does (HELLO 3), so a script that
// opted into RESP3 with redis.setresp(3) can return types RESP2 lacks. The
// adapter maps every reply to what the same command gives a RESP2 client,
// so the result does not depend on the protocol:
//
//	nil, Lua false                 -> nil
//	integer, Lua true (1)          -> int64
//	bulk, status, verbatim string  -> string (verbatim without its "txt:" prefix)
//	big number, double             -> string, the decimal text the server sent
//	RESP3 boolean                  -> int64 1 or 0 (what RESP2 clients get)
//	array, set                     -> []any
//	map                            -> []any{k1, v1, k2, v2, ...}, keys sorted
//
// RESP2 sends a map as a flat array in the server's order; rueidis hands a
// RESP3 map over only as a Go map, so the adapter sorts the keys to stay
// deterministic. An error reply nested in an array (a script returning
// {1, {err="x"}}, or a command that failed inside EXEC) makes the whole call
// return that error.
//
// # Errors
//
// Error replies come back as rueidis reports them (*rueidis.RedisError,
// whose text drops a leading "ERR "), except that NOSCRIPT replies also match
// driver.ErrNoScript and WRONGTYPE replies driver.ErrWrongType under
// errors.Is, with the server's text kept. Real Redis 7 answers a script that
// touches a hash with "WRONGTYPE Operation against a key holding the wrong
// kind of value script: <sha>, on @user_script:1."; miniredis answers "ERR
// Error compiling script (new function): :1: WRONGTYPE Operation against
// ..."; both are recognised. A cancelled or expired context gives
// context.Canceled or context.DeadlineExceeded, unwrapped, as rueidis does.
//
// # Retries and caching
//
// rueidis retries, by default, only read-only commands (here GET) after a
// network error; SET NX PX, EVAL, EVALSHA and transactions are sent at most
// once per call, so a lost reply surfaces as an error and relock's clean-up
// takes over. The adapter never reads through the client-side cache.
// Clients built by [Driver.Open] therefore set ClientOption.DisableCache, so
// they do not need CLIENT TRACKING on the server. Servers without CLIENT
// TRACKING, such as miniredis, need DisableCache: true in a client you build
// yourself, or rueidis.NewClient fails; miniredis also answers CLUSTER SLOTS,
// so set ForceSingleClient: true to get a plain single-node client.
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

// Compile-time checks of the capabilities relock looks for.
var (
	_ driver.Conn     = (*Conn)(nil)
	_ driver.Scripter = (*Conn)(nil)
	_ driver.Watcher  = (*Conn)(nil)
	_ driver.Driver   = Driver{}

	_ driver.ReplicaWaiter = (*Conn)(nil)
	_ driver.Subscriber    = (*Conn)(nil)
	_ driver.Validator     = (*Conn)(nil)
)

// Errors a Conn returns for misuse, checked with errors.Is.
var (
	// ErrNilClient reports a call on a Conn that New made from a nil
	// rueidis.Client (including an interface holding a nil pointer).
	ErrNilClient = errors.New("rueidisadapter: nil rueidis.Client")

	// ErrClosed reports a call on a Conn after its Close. It also
	// matches net.ErrClosed.
	ErrClosed = fmt.Errorf("rueidisadapter: use of closed Conn: %w", net.ErrClosed)
)

// unwatchTimeout bounds the UNWATCH sent when a Watch callback returns
// without EXEC. It runs even when the caller's context is over.
const unwatchTimeout = time.Second

// Conn is a relock driver connection over a rueidis.Client. It implements
// driver.Conn, driver.Scripter, driver.Watcher, driver.ReplicaWaiter,
// driver.Subscriber and driver.Validator, and is safe for concurrent use,
// as the rueidis.Client it wraps is.
type Conn struct {
	client rueidis.Client
	lazy   *lazyClient // instead of client, for a Conn made by Driver.Open
	owned  bool        // Close closes client
	closed atomic.Bool
	// pinning counts the Dedicate calls still running, whether or not
	// their caller left them at its context's end; Close waits for them.
	pinning sync.WaitGroup
}

// maxPinWait bounds how long Close waits for Dedicate calls that their
// callers left: rueidis gives up a connection within its Dialer.Timeout
// (5 s by default) and ConnWriteTimeout (10 s by default).
const maxPinWait = 15 * time.Second

// dedicate pins one connection of cl with Dedicate, which takes no context
// and may dial: against a server that does not answer it waits for
// rueidis's own timeouts. So it runs in a goroutine of its own, and
// dedicate returns ctx's error as soon as ctx ends; the goroutine then
// gives the connection back as soon as it gets one.
func (c *Conn) dedicate(ctx context.Context, cl rueidis.Client) (rueidis.DedicatedClient, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if ctx.Done() == nil {
		dc, release := cl.Dedicate()
		return dc, release, nil
	}
	type pinned struct {
		dc      rueidis.DedicatedClient
		release func()
	}
	got := make(chan pinned, 1)
	left := make(chan struct{})
	c.pinning.Add(1)
	go func() {
		defer c.pinning.Done()
		dc, release := cl.Dedicate()
		select {
		case got <- pinned{dc, release}:
		case <-left:
			release()
		}
	}()
	select {
	case p := <-got:
		return p.dc, p.release, nil
	case <-ctx.Done():
		close(left)
		// The goroutine may have sent just now.
		select {
		case p := <-got:
			p.release()
		default:
		}
		return nil, nil, ctx.Err()
	}
}

// New returns a Conn over c. The caller keeps ownership of c: Conn.Close
// leaves it open, and the caller closes it after the last use. When c is
// nil (or an interface holding a nil pointer), relock.New rejects the Conn
// with an error matching relock.ErrInvalidArgument and ErrNilClient (see
// [Conn.Validate]), and every method of the Conn but Close fails with
// ErrNilClient.
func New(c rueidis.Client) *Conn {
	if isNil(c) {
		c = nil
	}
	return &Conn{client: c}
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
	if c == nil || (c.client == nil && c.lazy == nil) {
		return ErrNilClient
	}
	return nil
}

// use returns the client to send commands with, or why there is none. A
// Conn made by Driver.Open makes its client on first use, within ctx.
func (c *Conn) use(ctx context.Context) (rueidis.Client, error) {
	switch {
	case c == nil || (c.client == nil && c.lazy == nil):
		return nil, ErrNilClient
	case c.closed.Load():
		return nil, ErrClosed
	case c.client != nil:
		return c.client, nil
	}
	return c.lazy.get(ctx, c)
}

// Close marks the Conn closed, so that later calls fail, and closes the
// rueidis client if the Conn owns it (Driver.Open made it). A client handed
// to New stays open. Close is safe to call more than once.
func (c *Conn) Close() error {
	if c == nil || c.closed.Swap(true) {
		return nil
	}
	if c.owned && c.client != nil {
		c.client.Close()
	}
	if c.lazy != nil {
		c.lazy.close()
	}
	done := make(chan struct{})
	go func() {
		c.pinning.Wait()
		close(done)
	}()
	t := time.NewTimer(maxPinWait)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return fmt.Errorf("rueidisadapter: connections being pinned for calls left at their context's end still wait %v after Close", maxPinWait)
	}
}

// SetNX runs SET key value NX PX ms, ttl rounded down to whole milliseconds.
// It reports true on "OK" and false on a nil reply (the key existed).
func (c *Conn) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	cl, err := c.use(ctx)
	if err != nil {
		return false, err
	}
	cmd := cl.B().Set().Key(key).Value(value).Nx().PxMilliseconds(ttl.Milliseconds()).Build()
	return setReply(cl.Do(ctx, cmd))
}

func setReply(r rueidis.RedisResult) (bool, error) {
	s, err := r.ToString()
	switch {
	case rueidis.IsRedisNil(err):
		return false, nil
	case err != nil:
		return false, translate(err)
	case s != "OK":
		return false, fmt.Errorf("rueidisadapter: SET NX replied %q", s)
	}
	return true, nil
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

// Eval runs EVAL script numkeys keys... args... and maps the reply as the
// package doc says.
func (c *Conn) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	cl, err := c.use(ctx)
	if err != nil {
		return nil, err
	}
	cmd, err := build(func() rueidis.Completed {
		return cl.B().Eval().Script(script).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
	})
	if err != nil {
		return nil, err
	}
	return result(cl.Do(ctx, cmd))
}

// EvalSha runs EVALSHA sha1 numkeys keys... args.... When the server does
// not know the script the error matches driver.ErrNoScript; EvalSha never
// falls back to EVAL itself.
func (c *Conn) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	cl, err := c.use(ctx)
	if err != nil {
		return nil, err
	}
	cmd, err := build(func() rueidis.Completed {
		return cl.B().Evalsha().Sha1(sha1).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
	})
	if err != nil {
		return nil, err
	}
	return result(cl.Do(ctx, cmd))
}

// EvalShaWait sends EVALSHA sha1 numkeys keys... args... and WAIT replicas
// timeout-in-ms on one dedicated connection, in one round trip, and returns
// the script's reply and the number of replicas that acknowledged the
// connection's writes. A script unknown to the server gives an error
// matching driver.ErrNoScript, whatever WAIT answered. When the script ran
// but WAIT failed, the error says so and the script's reply is returned
// with it.
func (c *Conn) EvalShaWait(ctx context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	cl, err := c.use(ctx)
	if err != nil {
		return nil, 0, err
	}
	return c.evalWait(ctx, cl, func() rueidis.Completed {
		return cl.B().Evalsha().Sha1(sha1).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
	}, replicas, timeout)
}

// EvalWait is EvalShaWait with EVAL script instead of EVALSHA.
func (c *Conn) EvalWait(ctx context.Context, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	cl, err := c.use(ctx)
	if err != nil {
		return nil, 0, err
	}
	return c.evalWait(ctx, cl, func() rueidis.Completed {
		return cl.B().Eval().Script(script).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
	}, replicas, timeout)
}

func (c *Conn) evalWait(ctx context.Context, cl rueidis.Client, eval func() rueidis.Completed, replicas int, timeout time.Duration) (any, int, error) {
	ms, err := waitArgs(replicas, timeout)
	if err != nil {
		return nil, 0, err
	}
	multi, err := build(func() []rueidis.Completed {
		return []rueidis.Completed{eval(), cl.B().Wait().Numreplicas(int64(replicas)).Timeout(ms).Build()}
	})
	if err != nil {
		return nil, 0, err
	}
	dc, release, err := c.dedicate(ctx, cl)
	if err != nil {
		return nil, 0, err
	}
	defer release()
	resps := dc.DoMulti(ctx, multi...)
	v, err := result(resps[0])
	if err != nil {
		return nil, 0, err
	}
	n, err := resps[1].AsInt64()
	if err != nil {
		return v, 0, fmt.Errorf("rueidisadapter: WAIT after the script: %w", translate(err))
	}
	return v, int(n), nil
}

// waitArgs checks the arguments of WAIT and returns its timeout in whole
// milliseconds, rounded up: a positive timeout below 1 ms must not become
// WAIT's 0, which blocks forever.
func waitArgs(replicas int, timeout time.Duration) (int64, error) {
	ms, err := driver.WaitTimeout(replicas, timeout)
	if err != nil {
		return 0, fmt.Errorf("rueidisadapter: %w", err)
	}
	return ms, nil
}

// Watch pins one connection of the pool (rueidis Client.Dedicate), runs
// WATCH keys... on it and calls fn with a Tx bound to it. It returns fn's
// error, or the error of WATCH itself. Unless fn ran EXEC, the connection
// gets UNWATCH before it goes back to the pool, even when ctx is over or fn
// panics.
func (c *Conn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	cl, err := c.use(ctx)
	if err != nil {
		return err
	}
	switch {
	case fn == nil:
		return errors.New("rueidisadapter: Watch with a nil function")
	case len(keys) == 0:
		return errors.New("rueidisadapter: Watch needs at least one key")
	}
	watch, err := build(func() rueidis.Completed { return cl.B().Watch().Key(keys...).Build() })
	if err != nil {
		return err
	}
	dc, release, err := c.dedicate(ctx, cl)
	if err != nil {
		return err
	}
	defer release()
	tx := &tx{dc: dc}
	defer tx.finish(ctx)
	if err := dc.Do(ctx, watch).Error(); err != nil {
		return translate(err)
	}
	return fn(tx)
}

// tx is the driver.Tx of one Watch call.
type tx struct {
	dc    rueidis.DedicatedClient
	execd bool // EXEC was answered, so the server dropped the watch
	done  bool // Watch returned
}

var errTxDone = errors.New("rueidisadapter: Tx used after its Watch returned")

// finish leaves the connection without a watch, unless EXEC already did.
func (t *tx) finish(ctx context.Context) {
	t.done = true
	if t.execd {
		return
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unwatchTimeout)
	defer cancel()
	// Either UNWATCH reaches the server before anything else sent on this
	// connection, or the connection broke and rueidis closes it instead of
	// putting it back in the pool.
	_ = t.dc.Do(uctx, t.dc.B().Unwatch().Build()).Error()
}

// Get runs GET key on the pinned connection.
func (t *tx) Get(ctx context.Context, key string) (string, bool, error) {
	if t.done {
		return "", false, errTxDone
	}
	// A cluster's dedicated client panics on a key of another slot than
	// the watched one: build turns that into an error.
	r, err := build(func() rueidis.RedisResult { return t.dc.Do(ctx, t.dc.B().Get().Key(key).Build()) })
	if err != nil {
		return "", false, err
	}
	return getReply(r)
}

// Exec sends MULTI, cmds and EXEC in one round trip on the pinned
// connection and returns the replies of cmds.
func (t *tx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	if t.done {
		return nil, errTxDone
	}
	for i, cmd := range cmds {
		if len(cmd) == 0 || cmd[0] == "" {
			return nil, fmt.Errorf("rueidisadapter: Exec: command %d is empty", i)
		}
	}
	multi, err := build(func() []rueidis.Completed {
		multi := make([]rueidis.Completed, 0, len(cmds)+2)
		multi = append(multi, t.dc.B().Multi().Build())
		for _, cmd := range cmds {
			multi = append(multi, t.dc.B().Arbitrary(cmd[0]).Args(cmd[1:]...).Build())
		}
		return append(multi, t.dc.B().Exec().Build())
	})
	if err != nil {
		return nil, err
	}
	resps, err := build(func() []rueidis.RedisResult { return t.dc.DoMulti(ctx, multi...) })
	if err != nil {
		return nil, err
	}
	for _, r := range resps {
		if err := r.NonRedisError(); err != nil {
			return nil, err // not sent, or the connection broke
		}
	}
	if err := resps[0].Error(); err != nil {
		return nil, fmt.Errorf("rueidisadapter: MULTI: %w", translate(err))
	}
	var queueErr error
	for i, r := range resps[1 : len(resps)-1] {
		if err := r.Error(); err != nil && queueErr == nil {
			queueErr = fmt.Errorf("rueidisadapter: %s (command %d) rejected, transaction discarded: %w", cmds[i][0], i, translate(err))
		}
	}
	execMsg, err := resps[len(resps)-1].ToMessage()
	if err == nil || rueidis.IsRedisNil(err) {
		t.execd = true // EXEC ran: the server dropped the watch
	}
	switch {
	case rueidis.IsRedisNil(err):
		return nil, driver.ErrTxAborted
	case queueErr != nil:
		return nil, queueErr
	case err != nil:
		return nil, fmt.Errorf("rueidisadapter: EXEC: %w", translate(err))
	}
	elems, err := execMsg.ToArray()
	if err != nil {
		return nil, fmt.Errorf("rueidisadapter: EXEC: %w", err)
	}
	if len(elems) != len(cmds) {
		return nil, fmt.Errorf("rueidisadapter: EXEC returned %d replies to %d commands", len(elems), len(cmds))
	}
	out := make([]any, len(elems))
	for i := range elems {
		if out[i], err = convert(&elems[i]); err != nil {
			return nil, fmt.Errorf("rueidisadapter: %s (command %d) in EXEC: %w", cmds[i][0], i, err)
		}
	}
	return out, nil
}

// build runs f, turning a panic of the rueidis command builder (keys of
// different cluster slots in one command, an Arbitrary SUBSCRIBE) into an
// error.
func build[T any](f func() T) (cmd T, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("rueidisadapter: cannot build or send the command: %v", p)
		}
	}()
	return f(), nil
}
