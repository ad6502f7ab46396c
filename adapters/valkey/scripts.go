package valkeyadapter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/relock-go/relock/driver"
)

func eval(src string, keys, args []string) command {
	return func(b valkey.Builder) valkey.Completed {
		return b.Eval().Script(src).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
	}
}

func evalSha(sha1 string, keys, args []string) command {
	return func(b valkey.Builder) valkey.Completed {
		return b.Evalsha().Sha1(sha1).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
	}
}

// Eval runs EVAL script numkeys keys... args....
func (c *Conn) Eval(ctx context.Context, src string, keys []string, args ...string) (any, error) {
	return result(c.do(ctx, eval(src, keys, args)))
}

// EvalSha runs EVALSHA sha1 numkeys keys... args...; an unknown script
// gives an error matching driver.ErrNoScript.
func (c *Conn) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	return result(c.do(ctx, evalSha(sha1, keys, args)))
}

// EvalShaWait sends EVALSHA and WAIT replicas timeout-in-ms pipelined on
// one pinned connection, since WAIT counts the writes of its connection.
// WAIT is a blocking command for valkey: the context and WAIT's timeout
// bound it, not ConnWriteTimeout. NOSCRIPT gives driver.ErrNoScript; when
// the script ran but WAIT failed, the script's reply comes with the error.
func (c *Conn) EvalShaWait(ctx context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return c.evalWait(ctx, evalSha(sha1, keys, args), replicas, timeout)
}

// EvalWait is EvalShaWait with EVAL.
func (c *Conn) EvalWait(ctx context.Context, src string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return c.evalWait(ctx, eval(src, keys, args), replicas, timeout)
}

func (c *Conn) evalWait(ctx context.Context, script command, replicas int, timeout time.Duration) (any, int, error) {
	ms, err := driver.WaitTimeout(replicas, timeout)
	if err != nil {
		return nil, 0, fmt.Errorf("relock/valkey: %w", err)
	}
	dc, unpin, err := c.pin(ctx)
	if err != nil {
		return nil, 0, err
	}
	resps, err := build(func() []valkey.ValkeyResult {
		return dc.DoMulti(ctx, script(dc.B()), dc.B().Wait().Numreplicas(int64(replicas)).Timeout(ms).Build())
	})
	unpin(err != nil || resps[1].NonValkeyError() != nil) // the replies come in order
	if err != nil {
		return nil, 0, err
	}
	v, err := result(resps[0])
	if err != nil {
		return nil, 0, err
	}
	n, err := resps[1].AsInt64()
	if err != nil {
		return v, 0, fmt.Errorf("relock/valkey: WAIT after the script: %w", wrap(err))
	}
	return v, int(n), nil
}

// Watch pins a connection, runs WATCH keys... on it and calls fn with a Tx
// on it. Unless fn ran EXEC, the connection gets UNWATCH (within a second,
// even after ctx ended) before it goes back to the pool; one on which a
// command was left without its reply is closed instead.
func (c *Conn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	if fn == nil || len(keys) == 0 {
		return errors.New("relock/valkey: Watch needs a function and at least one key")
	}
	dc, unpin, err := c.pin(ctx)
	if err != nil {
		return err
	}
	t := &tx{dc: dc}
	defer func() {
		if !t.execd && !t.broken {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			t.check(dc.Do(uctx, dc.B().Unwatch().Build()))
			cancel()
		}
		unpin(t.broken)
	}()
	watch := func(b valkey.Builder) valkey.Completed { return b.Watch().Key(keys...).Build() }
	if err := t.check(send(ctx, dc, watch)).Error(); err != nil {
		return wrap(err)
	}
	return fn(t)
}

// tx is the Tx of one Watch. Once Watch returned, valkey fails its calls.
type tx struct {
	dc     valkey.DedicatedClient
	execd  bool // EXEC dropped the watch
	broken bool // a command got no reply
}

// check notes a result without a reply from the server.
func (t *tx) check(r valkey.ValkeyResult) valkey.ValkeyResult {
	t.broken = t.broken || r.NonValkeyError() != nil
	return r
}

func (t *tx) Get(ctx context.Context, key string) (string, bool, error) {
	return getReply(t.check(send(ctx, t.dc, func(b valkey.Builder) valkey.Completed { return b.Get().Key(key).Build() })))
}

// Exec sends MULTI, cmds and EXEC in one round trip.
func (t *tx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	resps, err := build(func() []valkey.ValkeyResult {
		multi := valkey.Commands{t.dc.B().Multi().Build()}
		for _, cmd := range cmds {
			multi = append(multi, t.dc.B().Arbitrary(cmd...).Build())
		}
		return t.dc.DoMulti(ctx, append(multi, t.dc.B().Exec().Build())...)
	})
	if err != nil {
		return nil, err
	}
	exec := t.check(resps[len(resps)-1]) // the replies come in order
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
