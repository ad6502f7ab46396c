package goredis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
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
// goroutine of its own, and the Tx's calls are guarded as Conn's are, so
// that Watch and every Tx call return when ctx ends; that goroutine then
// waits for the Tx's calls still running before the UNWATCH.
func (c *Conn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	rdb, err := c.client()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	x := &tx{g: c.g}
	pinned, finish, watched := make(chan *redis.Tx), make(chan struct{}), make(chan error, 1)
	c.g.running.Add(1)
	go func() {
		defer c.g.running.Done()
		watched <- rdb.Watch(ctx, func(t *redis.Tx) error {
			select {
			case pinned <- t:
				<-finish // fn returned, or Watch gave up
				x.calls.Wait()
			case <-finish:
			}
			return nil
		}, keys...)
	}()
	select {
	case x.t = <-pinned:
	case err := <-watched: // WATCH failed
		close(finish)
		return wrap(err)
	case <-ctx.Done():
		close(finish)
		return ctx.Err()
	}
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
	t     *redis.Tx
	g     *guard
	mu    sync.Mutex     // one call at a time on the pinned connection
	calls sync.WaitGroup // calls under way, left at their context's end or not
	done  bool           // fn returned
}

// txCall runs f, a call on the pinned connection, as call does. A done ctx
// sends nothing: the pinned connection would not look at it.
func txCall[T any](ctx context.Context, t *tx, f func() (T, error)) (T, error) {
	var zero T
	if t.done {
		return zero, errors.New("relock/goredis: Tx used after its Watch function returned")
	}
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	t.calls.Add(1)
	return call(ctx, t.g, func() (T, error) {
		defer t.calls.Done()
		t.mu.Lock()
		defer t.mu.Unlock()
		return f()
	})
}

// Get runs GET key on the pinned connection.
func (t *tx) Get(ctx context.Context, key string) (string, bool, error) {
	return got(txCall(ctx, t, func() (string, error) { return t.t.Get(ctx, key).Result() }))
}

// Exec runs MULTI, cmds and EXEC in one round trip.
func (t *tx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	if len(cmds) == 0 || slices.ContainsFunc(cmds, func(c []string) bool { return len(c) == 0 }) {
		return nil, errors.New("relock/goredis: Exec needs commands, none of them empty")
	}
	res, err := txCall(ctx, t, func() ([]*redis.Cmd, error) {
		res := make([]*redis.Cmd, len(cmds))
		_, err := t.t.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for i, c := range cmds {
				res[i] = p.Do(ctx, anys(c)...)
			}
			return nil
		})
		return res, err
	})
	switch {
	case res == nil: // not sent, or left at ctx's end
		return nil, err
	case errors.Is(err, redis.TxFailedErr):
		return nil, fmt.Errorf("%w: %w", driver.ErrTxAborted, err)
	}
	out := make([]any, len(res))
	for i, cmd := range res {
		var cerr error
		if out[i], cerr = reply(cmd.Result()); cerr != nil {
			return nil, cerr
		}
	}
	if err != nil && !errors.Is(err, redis.Nil) { // MULTI or EXEC failed
		return nil, wrap(err)
	}
	return out, nil
}
