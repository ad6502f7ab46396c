package rueidisadapter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/rueidis"

	"github.com/relock-go/relock/driver"
)

// Eval runs EVAL script numkeys keys... args....
func (c *Conn) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	return c.script(ctx, evalCmd(script, keys, args))
}

// EvalSha runs EVALSHA; a script the server does not know gives an error
// matching driver.ErrNoScript.
func (c *Conn) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	return c.script(ctx, evalShaCmd(sha1, keys, args))
}

// EvalShaWait sends EVALSHA and WAIT in one round trip on one pinned
// connection. When the script ran but WAIT failed, the error says so and
// the script's reply comes with it.
func (c *Conn) EvalShaWait(ctx context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return c.evalWait(ctx, evalShaCmd(sha1, keys, args), replicas, timeout)
}

// EvalWait is EvalShaWait with EVAL script instead of EVALSHA.
func (c *Conn) EvalWait(ctx context.Context, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return c.evalWait(ctx, evalCmd(script, keys, args), replicas, timeout)
}

type command = func(rueidis.Builder) rueidis.Completed

func evalCmd(script string, keys, args []string) command {
	return func(b rueidis.Builder) rueidis.Completed {
		return b.Eval().Script(script).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
	}
}

func evalShaCmd(sha1 string, keys, args []string) command {
	return func(b rueidis.Builder) rueidis.Completed {
		return b.Evalsha().Sha1(sha1).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
	}
}

func (c *Conn) script(ctx context.Context, cmd command) (any, error) {
	cl, err := c.use(ctx)
	if err != nil {
		return nil, err
	}
	r, err := build(func() rueidis.RedisResult { return cl.Do(ctx, cmd(cl.B())) })
	if err != nil {
		return nil, err
	}
	return result(r)
}

// evalWait pins a connection rather than sending both with
// Client.DoMulti: a cluster client would send the keyless WAIT to any
// node, and a client with ConnLifetime may resend a DoMulti's tail on
// another connection. WAIT, being blocking, lifts ConnWriteTimeout; the
// context and WAIT's own timeout bound the round trip.
func (c *Conn) evalWait(ctx context.Context, eval command, replicas int, timeout time.Duration) (any, int, error) {
	cl, err := c.use(ctx)
	if err != nil {
		return nil, 0, err
	}
	ms, err := driver.WaitTimeout(replicas, timeout)
	if err != nil {
		return nil, 0, fmt.Errorf("relock/rueidis: %w", err)
	}
	multi, err := build(func() rueidis.Commands {
		return rueidis.Commands{eval(cl.B()), cl.B().Wait().Numreplicas(int64(replicas)).Timeout(ms).Build()}
	})
	if err != nil {
		return nil, 0, err
	}
	dc, release, err := c.dedicate(ctx, cl)
	if err != nil {
		return nil, 0, err
	}
	resps := dc.DoMulti(ctx, multi...)
	c.unpin(dc, release, resps[0].NonRedisError() != nil || resps[1].NonRedisError() != nil)
	v, err := result(resps[0])
	if err != nil {
		return nil, 0, err
	}
	n, err := resps[1].AsInt64()
	if err != nil {
		return v, 0, fmt.Errorf("relock/rueidis: WAIT after the script: %w", translate(err))
	}
	return v, int(n), nil
}

// Watch pins one connection, runs WATCH keys... on it and calls fn with a
// Tx bound to it. Unless fn ran EXEC, the connection gets UNWATCH before
// it goes back to the pool, even when fn panics; one on which a command
// was left without its reply is closed instead.
func (c *Conn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	cl, err := c.use(ctx)
	if err != nil {
		return err
	}
	if fn == nil || len(keys) == 0 {
		return errors.New("relock/rueidis: Watch needs a function and at least one key")
	}
	watch, err := build(func() rueidis.Completed { return cl.B().Watch().Key(keys...).Build() })
	if err != nil {
		return err
	}
	dc, release, err := c.dedicate(ctx, cl)
	if err != nil {
		return err
	}
	t := &tx{dc: dc}
	defer func() {
		t.done = true
		if !t.execd && !t.broken {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			t.check(dc.Do(uctx, dc.B().Unwatch().Build()))
			cancel()
		}
		c.unpin(dc, release, t.broken)
	}()
	if err := t.check(dc.Do(ctx, watch)).Error(); err != nil {
		return translate(err)
	}
	return fn(t)
}

// tx is the driver.Tx of one Watch call.
type tx struct {
	dc     rueidis.DedicatedClient
	execd  bool // EXEC was answered
	broken bool // a command got no reply
	done   bool // Watch returned
}

var errTxDone = errors.New("relock/rueidis: Tx used after its Watch returned")

// check notes a result without a reply from the server.
func (t *tx) check(r rueidis.RedisResult) rueidis.RedisResult {
	if r.NonRedisError() != nil {
		t.broken = true
	}
	return r
}

// Get runs GET key on the pinned connection.
func (t *tx) Get(ctx context.Context, key string) (string, bool, error) {
	if t.done {
		return "", false, errTxDone
	}
	// A cluster's dedicated client panics on a key of another slot.
	r, err := build(func() rueidis.RedisResult { return t.dc.Do(ctx, t.dc.B().Get().Key(key).Build()) })
	if err != nil {
		return "", false, err
	}
	return getReply(t.check(r))
}

// Exec sends MULTI, cmds and EXEC in one round trip on the pinned
// connection and returns the replies of cmds.
func (t *tx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	if t.done {
		return nil, errTxDone
	}
	resps, err := build(func() []rueidis.RedisResult {
		multi := rueidis.Commands{t.dc.B().Multi().Build()}
		for i, cmd := range cmds {
			if len(cmd) == 0 || cmd[0] == "" {
				panic(fmt.Sprintf("command %d is empty", i))
			}
			multi = append(multi, t.dc.B().Arbitrary(cmd[0]).Args(cmd[1:]...).Build())
		}
		return t.dc.DoMulti(ctx, append(multi, t.dc.B().Exec().Build())...)
	})
	if err != nil {
		return nil, err
	}
	for i, r := range resps {
		if err := t.check(r).NonRedisError(); err != nil {
			return nil, err
		} else if err := r.Error(); err != nil && i <= len(cmds) { // MULTI or a command, not EXEC
			what := "MULTI"
			if i > 0 {
				what = fmt.Sprintf("%s (command %d)", cmds[i-1][0], i-1)
			}
			return nil, fmt.Errorf("relock/rueidis: %s rejected, transaction discarded: %w", what, translate(err))
		}
	}
	exec, _ := resps[len(resps)-1].ToMessage() // an error reply is in it too
	t.execd = exec.IsNil() || exec.IsArray()   // the server dropped the watch
	if exec.IsNil() {
		return nil, driver.ErrTxAborted
	}
	v, err := convert(&exec)
	if err != nil {
		return nil, fmt.Errorf("relock/rueidis: EXEC: %w", err)
	}
	if out, _ := v.([]any); len(out) == len(cmds) {
		return out, nil
	}
	return nil, fmt.Errorf("relock/rueidis: EXEC returned %v to %d commands", v, len(cmds))
}
