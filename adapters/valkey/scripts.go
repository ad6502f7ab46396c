package valkeyadapter

import (
	"context"
	"fmt"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/relock-go/relock/driver"
)

type script func(valkey.Builder) valkey.Completed

func eval(src string, keys, args []string) script {
	return func(b valkey.Builder) valkey.Completed {
		return b.Eval().Script(src).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
	}
}

func evalSha(sha1 string, keys, args []string) script {
	return func(b valkey.Builder) valkey.Completed {
		return b.Evalsha().Sha1(sha1).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
	}
}

// Eval runs EVAL script numkeys keys... args....
func (c *Conn) Eval(ctx context.Context, src string, keys []string, args ...string) (any, error) {
	return c.run(ctx, eval(src, keys, args))
}

// EvalSha runs EVALSHA sha1 numkeys keys... args...; an unknown script
// gives an error matching driver.ErrNoScript.
func (c *Conn) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	return c.run(ctx, evalSha(sha1, keys, args))
}

func (c *Conn) run(ctx context.Context, s script) (any, error) {
	cl, err := c.use(ctx)
	if err != nil {
		return nil, err
	}
	r, err := build(func() valkey.ValkeyResult { return cl.Do(ctx, s(cl.B())) })
	if err != nil {
		return nil, err
	}
	return result(r)
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

func (c *Conn) evalWait(ctx context.Context, s script, replicas int, timeout time.Duration) (any, int, error) {
	ms, err := driver.WaitTimeout(replicas, timeout)
	if err != nil {
		return nil, 0, fmt.Errorf("relock/valkey: %w", err)
	}
	cl, err := c.use(ctx)
	if err != nil {
		return nil, 0, err
	}
	cmds, err := build(func() []valkey.Completed {
		return []valkey.Completed{s(cl.B()), cl.B().Wait().Numreplicas(int64(replicas)).Timeout(ms).Build()}
	})
	if err != nil {
		return nil, 0, err
	}
	dc, release, err := c.dedicate(ctx, cl)
	if err != nil {
		return nil, 0, err
	}
	defer release()
	resps := dc.DoMulti(ctx, cmds...)
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
