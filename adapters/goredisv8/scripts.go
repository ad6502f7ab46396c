package goredisv8

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-redis/redis/v8"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

// Eval runs EVAL script numkeys keys... args....
func (c *Conn) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	return c.do(ctx, func(rdb redis.UniversalClient) (any, error) {
		return reply(evalCmd(ctx, rdb, false, script, keys, args).Result())
	})
}

// EvalSha runs EVALSHA sha1 numkeys keys... args...; a script the server
// does not know gives an error matching driver.ErrNoScript.
func (c *Conn) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	return c.do(ctx, func(rdb redis.UniversalClient) (any, error) {
		return reply(evalCmd(ctx, rdb, true, sha1, keys, args).Result())
	})
}

func evalCmd(ctx context.Context, s redis.Scripter, sha bool, script string, keys, args []string) *redis.Cmd {
	if sha {
		return s.EvalSha(ctx, script, keys, anys(args)...)
	}
	return s.Eval(ctx, script, keys, anys(args)...)
}

// EvalShaWait sends EVALSHA and WAIT replicas timeout on one connection of
// a *redis.Client, pipelined, or one after the other on a pinned
// connection when WAIT may outlast half the ReadTimeout (which bounds a
// pipeline's replies). On a *redis.ClusterClient both go through the
// client of the primary of the first key's slot; a MOVED reply from it (a
// stale slot map) fails the call, having run nothing, and reloads the map.
// For other clients, and a cluster script without keys, it fails with an
// error matching errors.ErrUnsupported and relock.ErrUnsupported, sending
// nothing.
func (c *Conn) EvalShaWait(ctx context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return c.evalWait(ctx, true, sha1, keys, args, replicas, timeout)
}

// EvalWait is EvalShaWait with EVAL script.
func (c *Conn) EvalWait(ctx context.Context, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return c.evalWait(ctx, false, script, keys, args, replicas, timeout)
}

var errWaitUnsupported = fmt.Errorf("%w: %w", relock.ErrUnsupported, errors.ErrUnsupported)

func (c *Conn) evalWait(ctx context.Context, sha bool, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	ms, err := driver.WaitTimeout(replicas, timeout)
	if err != nil {
		return nil, 0, fmt.Errorf("relock/goredisv8: %w", err)
	}
	type waited struct {
		v     any
		acked int
	}
	r, err := c.do(ctx, func(rdb redis.UniversalClient) (any, error) {
		switch r := rdb.(type) {
		case *redis.Client:
			v, acked, err := scriptWait(ctx, r, sha, script, keys, args, replicas, ms)
			return waited{v, acked}, err
		case *redis.ClusterClient:
			if len(keys) == 0 {
				return nil, fmt.Errorf("relock/goredisv8: a script without keys has no node to WAIT on in a cluster: %w", errWaitUnsupported)
			}
			node, err := r.MasterForKey(ctx, keys[0])
			if err != nil {
				return nil, fmt.Errorf("relock/goredisv8: the node for %q: %w", keys[0], translate(err))
			}
			v, acked, err := scriptWait(ctx, node, sha, script, keys, args, replicas, ms)
			if err != nil && strings.HasPrefix(err.Error(), "MOVED ") {
				r.ReloadState(ctx)
			}
			return waited{v, acked}, err
		}
		return nil, fmt.Errorf("relock/goredisv8: a %T may send WAIT to another connection than the script: %w", rdb, errWaitUnsupported)
	})
	w, _ := r.(waited)
	return w.v, w.acked, err
}

// scriptWait sends the script and WAIT ms on one connection of rdb.
func scriptWait(ctx context.Context, rdb *redis.Client, sha bool, script string, keys, args []string, replicas int, ms int64) (any, int, error) {
	timeout := time.Duration(ms) * time.Millisecond
	var eval *redis.Cmd
	var wait func() (int64, error)
	if rt := rdb.Options().ReadTimeout; rt > 0 && timeout > rt/2 {
		cn := rdb.Conn(ctx)
		defer cn.Close()
		if eval = evalCmd(ctx, cn, sha, script, keys, args); eval.Err() != nil && !errors.Is(eval.Err(), redis.Nil) {
			return nil, 0, translate(eval.Err())
		}
		wait = cn.Wait(ctx, replicas, timeout).Result // read within timeout + 10 s
	} else if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		eval = evalCmd(ctx, p, sha, script, keys, args)
		wait = p.Do(ctx, "wait", replicas, ms).Int64
		return nil
	}); err != nil && ctx.Err() != nil {
		return nil, 0, ctx.Err() // the commands hold the socket's error
	}
	v, err := reply(eval.Result())
	if err != nil {
		return nil, 0, err
	}
	n, err := wait()
	if err != nil {
		return v, 0, fmt.Errorf("relock/goredisv8: WAIT after the script: %w", translate(err))
	}
	return v, int(n), nil
}

// Watch runs fn inside go-redis's Watch, which pins a connection, sends
// WATCH keys... and UNWATCH before giving it back. When the calls are
// guarded, go-redis's Watch runs in a goroutine of its own and fn in the
// caller's, so that Watch returns when ctx ends even while dialling.
func (c *Conn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	rdb, err := c.client()
	if err != nil {
		return err
	}
	var fnErr error
	run := func(t *redis.Tx) error {
		fnErr = fn(tx{t})
		return fnErr
	}
	if !c.guard || ctx.Done() == nil {
		err = rdb.Watch(ctx, run, keys...)
	} else if err = ctx.Err(); err == nil {
		pinned, finish, watched := make(chan *redis.Tx), make(chan struct{}), make(chan error, 1)
		defer close(finish)
		if !c.goTracked(func() {
			watched <- rdb.Watch(ctx, func(t *redis.Tx) error {
				select {
				case pinned <- t:
					<-finish // fn has returned: go-redis sends UNWATCH
				case <-finish:
				}
				return nil
			}, keys...)
		}) {
			return ErrClosed
		}
		select {
		case t := <-pinned:
			return run(t)
		case err = <-watched:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fnErr != nil {
		return fnErr
	}
	return translate(err)
}

// tx is the driver.Tx over a go-redis Tx, valid while fn runs.
type tx struct{ t *redis.Tx }

// Get runs GET key on the pinned connection.
func (t tx) Get(ctx context.Context, key string) (string, bool, error) {
	v, err := reply(t.t.Get(ctx, key).Result())
	s, ok := v.(string)
	return s, ok, err
}

// Exec runs MULTI, cmds and EXEC on the pinned connection in one round
// trip. An EXEC aborted by a watched key gives driver.ErrTxAborted.
func (t tx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	if len(cmds) == 0 || slices.ContainsFunc(cmds, func(c []string) bool { return len(c) == 0 }) {
		return nil, errors.New("relock/goredisv8: Exec of no command, or of an empty one")
	}
	if err := ctx.Err(); err != nil {
		return nil, err // nothing sent: go-redis v8 writes a pipeline on a pinned cluster connection whatever ctx says
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
		var cerr error
		if out[i], cerr = reply(d.(*redis.Cmd).Result()); cerr != nil {
			return nil, cerr
		}
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, translate(err) // concerns the whole transaction
	}
	return out, nil
}
