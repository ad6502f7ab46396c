package goredis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

// Eval runs EVAL script numkeys keys... args....
func (c *Conn) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	return c.eval(ctx, false, script, keys, args)
}

// EvalSha runs EVALSHA sha1 numkeys keys... args.... A script unknown to
// the server gives an error matching driver.ErrNoScript.
func (c *Conn) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	return c.eval(ctx, true, sha1, keys, args)
}

func (c *Conn) eval(ctx context.Context, sha bool, script string, keys, args []string) (any, error) {
	rdb, err := c.client()
	if err != nil {
		return nil, err
	}
	return call(ctx, c.g, func() (any, error) { return reply(evalCmd(ctx, rdb, sha, script, keys, args).Result()) })
}

func evalCmd(ctx context.Context, s redis.Scripter, sha bool, script string, keys, args []string) *redis.Cmd {
	if sha {
		return s.EvalSha(ctx, script, keys, anys(args)...)
	}
	return s.Eval(ctx, script, keys, anys(args)...)
}

// EvalShaWait runs EVALSHA and then WAIT replicas timeout on the same
// connection (see "Waiting for replicas" in the package doc). When the
// script ran but WAIT failed, the script's reply comes with the error.
func (c *Conn) EvalShaWait(ctx context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return c.evalWait(ctx, true, sha1, keys, args, replicas, timeout)
}

// EvalWait is EvalShaWait with EVAL script instead of EVALSHA.
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
		return nil, 0, fmt.Errorf("relock/goredis: %w", err)
	}
	var node *redis.Client
	switch r := rdb.(type) {
	case *redis.Client:
		node = r
	case *redis.ClusterClient:
		if len(keys) == 0 {
			return nil, 0, fmt.Errorf("relock/goredis: a script without keys has no node to WAIT on in a cluster: %w", errWaitUnsupported)
		}
	default:
		return nil, 0, fmt.Errorf("relock/goredis: a %T may send WAIT to another connection than the script's: %w", rdb, errWaitUnsupported)
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	type waited struct {
		v     any
		acked int64
	}
	wt := time.Duration(ms) * time.Millisecond
	r, err := call(ctx, c.g, func() (r waited, err error) {
		node := node
		if cluster, ok := rdb.(*redis.ClusterClient); ok {
			if node, err = cluster.MasterForKey(ctx, keys[0]); err != nil {
				return r, fmt.Errorf("relock/goredis: the node for %q: %w", keys[0], wrap(err))
			}
			defer func() { // a node follows no MOVED: the slot map is stale
				var re redis.Error
				if errors.As(err, &re) && strings.HasPrefix(re.Error(), "MOVED ") {
					cluster.ReloadState(ctx)
				}
			}()
		}
		var eval *redis.Cmd
		var acked func() (int64, error)
		// go-redis reads a pipeline's replies within ReadTimeout, but
		// gives a lone WAIT its timeout plus 10 s.
		if rt := node.Options().ReadTimeout; rt > 0 && wt > rt/2 {
			cn := node.Conn()
			defer cn.Close()
			if eval = evalCmd(ctx, cn, sha, script, keys, args); eval.Err() != nil && !errors.Is(eval.Err(), redis.Nil) {
				return r, wrap(eval.Err())
			}
			acked = cn.Wait(ctx, replicas, wt).Result
		} else {
			var wait *redis.Cmd
			_, _ = node.Pipelined(ctx, func(p redis.Pipeliner) error {
				eval, wait = evalCmd(ctx, p, sha, script, keys, args), p.Do(ctx, "wait", replicas, ms)
				return nil
			}) // each command holds its own error
			acked = wait.Int64
		}
		if r.v, err = reply(eval.Result()); err != nil {
			return r, err
		}
		if r.acked, err = acked(); err != nil {
			return r, fmt.Errorf("relock/goredis: WAIT after the script: %w", wrap(err))
		}
		return r, nil
	})
	return r.v, int(r.acked), err
}

// Watch runs fn inside go-redis's Watch, which pins one connection, sends
// WATCH keys... on it, and sends UNWATCH when fn returns without EXEC (a
// broken connection is dropped, not pooled). go-redis's Watch runs on a
// goroutine of its own that runs the Tx's commands, so that Watch and
// every Tx call return when ctx ends; that goroutine then finishes the
// command under way and the UNWATCH by itself.
func (c *Conn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	rdb, err := c.client()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var (
		pinned  = make(chan *redis.Tx)
		ops     = make(chan func())   // commands for the pinned connection
		finish  = make(chan struct{}) // fn returned, or Watch gave up
		watched = make(chan error, 1)
	)
	c.g.running.Add(1)
	go func() {
		defer c.g.running.Done()
		watched <- rdb.Watch(ctx, func(t *redis.Tx) error {
			select {
			case pinned <- t:
			case <-finish:
				return nil
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
		return wrap(err)
	case <-ctx.Done():
		close(finish)
		return ctx.Err()
	}
	x := &tx{t: t, ops: ops}
	err = fn(x)
	x.done = true
	close(finish)
	if err != nil {
		return err
	}
	select {
	case err := <-watched:
		return wrap(err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tx is the driver.Tx of one Watch callback.
type tx struct {
	t    *redis.Tx
	ops  chan<- func()
	done bool // fn returned
}

// run has Watch's goroutine run op on the pinned connection, and returns
// ctx's error as soon as ctx ends (op must then touch nothing its caller
// reads). A done ctx sends nothing: the pinned connection would not look.
func (t *tx) run(ctx context.Context, op func()) error {
	if t.done {
		return errors.New("relock/goredis: Tx used after its Watch function returned")
	}
	if err := ctx.Err(); err != nil {
		return err
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

// Get runs GET key on the pinned connection.
func (t *tx) Get(ctx context.Context, key string) (string, bool, error) {
	var v string
	var err error
	if rerr := t.run(ctx, func() { v, err = t.t.Get(ctx, key).Result() }); rerr != nil {
		return "", false, rerr
	}
	return got(v, err)
}

// Exec runs MULTI, cmds and EXEC in one round trip.
func (t *tx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	if len(cmds) == 0 || slices.ContainsFunc(cmds, func(c []string) bool { return len(c) == 0 }) {
		return nil, errors.New("relock/goredis: Exec needs commands, none of them empty")
	}
	res := make([]*redis.Cmd, len(cmds))
	var perr error
	if err := t.run(ctx, func() {
		_, perr = t.t.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for i, c := range cmds {
				res[i] = p.Do(ctx, anys(c)...)
			}
			return nil
		})
	}); err != nil {
		return nil, err
	}
	if errors.Is(perr, redis.TxFailedErr) {
		return nil, fmt.Errorf("%w: %w", driver.ErrTxAborted, perr)
	}
	out := make([]any, len(res))
	for i, cmd := range res {
		var err error
		if out[i], err = reply(cmd.Result()); err != nil {
			return nil, err
		}
	}
	if perr != nil && !errors.Is(perr, redis.Nil) { // MULTI or EXEC failed
		return nil, wrap(perr)
	}
	return out, nil
}
