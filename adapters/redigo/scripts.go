package redigo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/relock-go/relock/driver"
)

// Eval runs EVAL script numkeys keys... args....
func (c *Conn) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	return c.eval(ctx, "EVAL", script, keys, args)
}

// EvalSha runs EVALSHA sha1 numkeys keys... args...; an unknown script
// gives an error matching driver.ErrNoScript.
func (c *Conn) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	return c.eval(ctx, "EVALSHA", sha1, keys, args)
}

func (c *Conn) eval(ctx context.Context, cmd, script string, keys, args []string) (any, error) {
	r, err := c.do(ctx, cmd, evalArgs(script, keys, args)...)
	if err != nil {
		return nil, err
	}
	return driver.ConvertReply(r)
}

// evalArgs returns the arguments of EVAL or EVALSHA.
func evalArgs(script string, keys, args []string) []any {
	return append([]any{script, len(keys)}, anys(keys, args)...)
}

// EvalShaWait sends EVALSHA and WAIT replicas timeout-in-ms pipelined on
// one pooled connection, and returns the script's reply and WAIT's count.
// A NOSCRIPT reply gives an error matching driver.ErrNoScript; when the
// script ran but WAIT failed, the error says so and the script's reply
// comes with it.
func (c *Conn) EvalShaWait(ctx context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return c.evalWait(ctx, "EVALSHA", sha1, keys, args, replicas, timeout)
}

// EvalWait is EvalShaWait with EVAL script instead of EVALSHA.
func (c *Conn) EvalWait(ctx context.Context, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return c.evalWait(ctx, "EVAL", script, keys, args, replicas, timeout)
}

func (c *Conn) evalWait(ctx context.Context, cmd, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	ms, err := driver.WaitTimeout(replicas, timeout)
	if err != nil {
		return nil, 0, err
	}
	rc, err := c.conn(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer rc.Close() // reads what is left unread, or drops a broken connection
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if err = rc.Send(cmd, evalArgs(script, keys, args)...); err == nil {
		if err = rc.Send("WAIT", replicas, ms); err == nil {
			err = rc.Flush()
		}
	}
	if err != nil {
		return nil, 0, translate(ctx, err)
	}
	r, err := redis.ReceiveContext(rc, ctx)
	if err != nil {
		if errors.As(err, new(redis.Error)) {
			_, _ = redis.ReceiveContext(rc, ctx) // WAIT's reply still follows
		}
		return nil, 0, translate(ctx, err)
	}
	w, werr := redis.ReceiveContext(rc, ctx)
	v, err := driver.ConvertReply(r)
	switch n, ok := w.(int64); {
	case err != nil:
		return nil, 0, err
	case werr != nil:
		return v, 0, fmt.Errorf("relock/redigo: WAIT after the script: %w", translate(ctx, werr))
	case !ok:
		return v, 0, fmt.Errorf("relock/redigo: unexpected reply %T to WAIT", w)
	default:
		return v, int(n), nil
	}
}

// Watch takes one connection from the pool, runs WATCH keys... on it and
// calls fn with a Tx bound to it. It returns fn's error (or WATCH's).
// Unless fn ran EXEC, Watch sends UNWATCH before the connection goes back.
func (c *Conn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) (err error) {
	rc, err := c.conn(ctx)
	if err != nil {
		return err
	}
	t := &tx{rc: rc, watching: true}
	defer func() {
		t.done = true
		if t.watching && rc.Err() == nil {
			// Bounded even when ctx is over: the connection must not go
			// back to the pool still watching keys.
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_, uerr := redis.DoContext(rc, uctx, "UNWATCH")
			cancel()
			if uerr != nil && err == nil {
				err = translate(ctx, uerr)
			}
		}
		_ = rc.Close()
	}()
	if _, err := do(ctx, rc, "WATCH", anys(keys)...); err != nil {
		return err
	}
	return fn(t)
}

// anys returns lists, one after the other, as arguments of a command.
func anys(lists ...[]string) []any {
	var a []any
	for _, list := range lists {
		for _, s := range list {
			a = append(a, s)
		}
	}
	return a
}

// tx is the driver.Tx of one Watch call, valid only while fn runs.
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
	return getReply(do(ctx, t.rc, "GET", key))
}

// Exec pipelines MULTI, cmds and EXEC on the pinned connection and returns
// the replies of cmds.
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
	err := t.rc.Send("MULTI")
	for _, cmd := range cmds {
		if err == nil {
			err = t.rc.Send(cmd[0], anys(cmd[1:])...)
		}
	}
	if err != nil {
		return nil, translate(ctx, err)
	}
	// DoContext flushes and reads every reply; it returns EXEC's and the
	// first error reply (a command refused while queuing, then EXECABORT).
	r, err := redis.DoContext(t.rc, ctx, "EXEC")
	if err == nil || errors.As(err, new(redis.Error)) {
		t.watching = false // the server answered EXEC: no more watch
	}
	if err != nil {
		return nil, translate(ctx, err)
	}
	if r == nil {
		return nil, driver.ErrTxAborted
	}
	if _, ok := r.([]any); !ok {
		return nil, fmt.Errorf("relock/redigo: unexpected reply %T to EXEC", r)
	}
	out, err := driver.ConvertReply(r) // an error reply in the array is the error
	if err != nil {
		return nil, err
	}
	return out.([]any), nil
}
