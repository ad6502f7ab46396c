package goredisv8

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-redis/redis/v8"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

// Eval runs EVAL script numkeys keys... args....
func (c *Conn) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	return c.eval(ctx, false, script, keys, args)
}

// EvalSha runs EVALSHA sha1 numkeys keys... args...; a script the server
// does not know gives an error matching driver.ErrNoScript.
func (c *Conn) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	return c.eval(ctx, true, sha1, keys, args)
}

func (c *Conn) eval(ctx context.Context, sha bool, script string, keys, args []string) (any, error) {
	rdb, err := c.client()
	if err != nil {
		return nil, err
	}
	return call(ctx, c, func() (any, error) { return reply(evalCmd(ctx, rdb, sha, script, keys, args).Result()) })
}

func evalCmd(ctx context.Context, s redis.Scripter, sha bool, script string, keys, args []string) *redis.Cmd {
	if sha {
		return s.EvalSha(ctx, script, keys, anys(args)...)
	}
	return s.Eval(ctx, script, keys, anys(args)...)
}

// EvalShaWait sends EVALSHA and then WAIT replicas timeout on one
// connection, and returns the script's reply and WAIT's count. A
// *redis.Client pipelines the two; when the WAIT may outlast half the
// client's ReadTimeout, which bounds a pipeline's replies, they go one
// after the other on one pinned connection. A *redis.ClusterClient sends
// them through the client of the primary of the first key's slot; a
// MOVED reply from it (a slot map out of date) fails the call, having run
// nothing, and reloads the map. Other clients, and a cluster script
// without keys, get an error matching errors.ErrUnsupported and
// relock.ErrUnsupported, with nothing sent.
func (c *Conn) EvalShaWait(ctx context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return c.evalWait(ctx, true, sha1, keys, args, replicas, timeout)
}

// EvalWait is EvalShaWait with EVAL script.
func (c *Conn) EvalWait(ctx context.Context, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return c.evalWait(ctx, false, script, keys, args, replicas, timeout)
}

var errWaitUnsupported = fmt.Errorf("%w: %w", relock.ErrUnsupported, errors.ErrUnsupported)

func (c *Conn) evalWait(ctx context.Context, sha bool, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	rdb, err := c.client()
	if err != nil {
		return nil, 0, err
	}
	ms, err := driver.WaitTimeout(replicas, timeout)
	if err != nil {
		return nil, 0, fmt.Errorf("relock/goredisv8: %w", err)
	}
	var node *redis.Client
	switch r := rdb.(type) {
	case *redis.Client:
		node = r
	case *redis.ClusterClient:
		if len(keys) == 0 {
			return nil, 0, fmt.Errorf("relock/goredisv8: a script without keys has no node to WAIT on in a cluster: %w", errWaitUnsupported)
		}
	default:
		return nil, 0, fmt.Errorf("relock/goredisv8: a %T may send WAIT to another connection than the script: %w", rdb, errWaitUnsupported)
	}
	type waited struct {
		v     any
		acked int
	}
	r, err := call(ctx, c, func() (waited, error) {
		if node == nil {
			cc := rdb.(*redis.ClusterClient)
			n, err := cc.MasterForKey(ctx, keys[0])
			if err != nil {
				return waited{}, fmt.Errorf("relock/goredisv8: the node for %q: %w", keys[0], translate(err))
			}
			v, acked, err := scriptWait(ctx, n, sha, script, keys, args, replicas, ms)
			if err != nil && strings.HasPrefix(err.Error(), "MOVED ") {
				cc.ReloadState(ctx)
			}
			return waited{v, acked}, err
		}
		v, acked, err := scriptWait(ctx, node, sha, script, keys, args, replicas, ms)
		return waited{v, acked}, err
	})
	return r.v, r.acked, err
}

// scriptWait sends the script and WAIT ms on one connection of rdb.
func scriptWait(ctx context.Context, rdb *redis.Client, sha bool, script string, keys, args []string, replicas int, ms int64) (any, int, error) {
	timeout := time.Duration(ms) * time.Millisecond
	var eval *redis.Cmd
	var acked func() (int64, error)
	if rt := rdb.Options().ReadTimeout; rt > 0 && timeout > rt/2 {
		cn := rdb.Conn(ctx)
		defer cn.Close()
		if eval = evalCmd(ctx, cn, sha, script, keys, args); eval.Err() != nil && !errors.Is(eval.Err(), redis.Nil) {
			return nil, 0, translate(eval.Err())
		}
		acked = cn.Wait(ctx, replicas, timeout).Result // read within timeout + 10 s
	} else {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			eval = evalCmd(ctx, p, sha, script, keys, args)
			acked = p.Do(ctx, "wait", replicas, ms).Int64
			return nil
		}) // each command holds its own error, but not the context's
		if err != nil && ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
	}
	v, err := reply(eval.Result())
	if err != nil {
		return nil, 0, err
	}
	n, err := acked()
	if err != nil {
		return v, 0, fmt.Errorf("relock/goredisv8: WAIT after the script: %w", translate(err))
	}
	return v, int(n), nil
}

// Watch runs fn inside go-redis's Watch, which pins one connection, sends
// WATCH keys... on it and UNWATCH before giving it back. When calls are
// guarded, go-redis's Watch runs in a goroutine of its own and fn in the
// caller's, so that Watch returns when ctx ends even while the connection
// is being made.
func (c *Conn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	rdb, err := c.client()
	if err != nil {
		return err
	}
	var fnErr error
	run := func(t *redis.Tx) error {
		x := &tx{t: t}
		fnErr = fn(x)
		x.done = true
		return fnErr
	}
	if c.guard && ctx.Done() != nil {
		pinned, finish := make(chan *redis.Tx), make(chan struct{})
		defer close(finish)
		watched := make(chan error, 1)
		if !c.goTracked(func() {
			watched <- rdb.Watch(ctx, func(t *redis.Tx) error {
				select {
				case pinned <- t:
					<-finish
				case <-finish:
				}
				return nil
			}, keys...)
		}) {
			return ErrClosed
		}
		select {
		case t := <-pinned:
			if err := run(t); err != nil {
				return err
			}
			return nil // fn's EXEC, if any, cleared the watch; go-redis sends UNWATCH
		case err = <-watched:
		case <-ctx.Done():
			return ctx.Err()
		}
	} else {
		err = rdb.Watch(ctx, run, keys...)
	}
	if fnErr != nil {
		return fnErr
	}
	return translate(err)
}

// tx is the driver.Tx over a go-redis Tx, alive while fn runs.
type tx struct {
	t    *redis.Tx
	done bool
}

var errTxDone = errors.New("relock/goredisv8: Tx used after its Watch function returned")

// Get runs GET key on the pinned connection.
func (t *tx) Get(ctx context.Context, key string) (string, bool, error) {
	if t.done {
		return "", false, errTxDone
	}
	v, err := reply(t.t.Get(ctx, key).Result())
	s, ok := v.(string)
	return s, ok, err
}

// Exec runs MULTI, cmds and EXEC on the pinned connection in one round
// trip. An EXEC aborted by a watched key gives driver.ErrTxAborted.
func (t *tx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	if t.done {
		return nil, errTxDone
	}
	if len(cmds) == 0 {
		return nil, errors.New("relock/goredisv8: Exec of a transaction with no commands")
	}
	for i, c := range cmds {
		if len(c) == 0 {
			return nil, fmt.Errorf("relock/goredisv8: Exec: command %d is empty", i)
		}
	}
	done, err := t.t.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range cmds {
			p.Do(ctx, anys(c)...)
		}
		return nil
	})
	if errors.Is(err, redis.TxFailedErr) {
		return nil, fmt.Errorf("%w (%w)", driver.ErrTxAborted, err)
	}
	if len(done) != len(cmds) {
		return nil, translate(err)
	}
	out := make([]any, len(done))
	for i, d := range done {
		v, cerr := reply(d.(*redis.Cmd).Result())
		if cerr != nil {
			return nil, cerr
		}
		out[i] = v
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, translate(err)
	}
	return out, nil
}
