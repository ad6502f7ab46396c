package radixadapter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/mediocregopher/radix/v4"

	"github.com/relock-go/relock/driver"
)

// Eval runs EVAL script numkeys keys... args....
func (c *Conn) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	return c.eval(ctx, keys, evalArgs("EVAL", script, keys, args))
}

// EvalSha runs EVALSHA; a script the server lacks gives an error matching
// driver.ErrNoScript (it does not fall back to EVAL as radix.EvalScript).
func (c *Conn) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	return c.eval(ctx, keys, evalArgs("EVALSHA", sha1, keys, args))
}

func (c *Conn) eval(ctx context.Context, keys, args []string) (any, error) {
	var r any
	if err := c.run(ctx, &action{keys, commands{args}, &r}); err != nil {
		return nil, err
	}
	return convert(r)
}

func evalArgs(cmd, script string, keys, args []string) []string {
	return append(append([]string{cmd, script, strconv.Itoa(len(keys))}, keys...), args...)
}

// EvalShaWait pipelines EVALSHA and WAIT replicas timeout on one
// connection and returns the script's reply and WAIT's count. When WAIT
// fails after the script ran, the reply comes with the error.
func (c *Conn) EvalShaWait(ctx context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return c.evalWait(ctx, keys, evalArgs("EVALSHA", sha1, keys, args), replicas, timeout)
}

// EvalWait is EvalShaWait with EVAL.
func (c *Conn) EvalWait(ctx context.Context, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return c.evalWait(ctx, keys, evalArgs("EVAL", script, keys, args), replicas, timeout)
}

func (c *Conn) evalWait(ctx context.Context, keys, eval []string, replicas int, timeout time.Duration) (any, int, error) {
	ms, err := driver.WaitTimeout(replicas, timeout)
	if err != nil {
		return nil, 0, fmt.Errorf("relock/radix: %w", err)
	}
	r := newReplies(2)
	if err := c.run(ctx, &action{keys, commands{eval, {"WAIT", strconv.Itoa(replicas), strconv.FormatInt(ms, 10)}}, r}); err != nil {
		return nil, 0, err
	} else if r.errs[0] != nil {
		return nil, 0, translate(ctx, r.errs[0])
	}
	v, err := convert(r.vals[0])
	n, ok := r.vals[1].(int64)
	switch {
	case err != nil:
		return nil, 0, err
	case r.errs[1] != nil:
		return v, 0, fmt.Errorf("relock/radix: WAIT after the script: %w", translate(ctx, r.errs[1]))
	case !ok:
		return v, 0, fmt.Errorf("relock/radix: unexpected reply %T (%v) to WAIT", r.vals[1], r.vals[1])
	}
	return v, int(n), nil
}

// Watch runs WATCH keys... on one connection of the client (routed by the
// first key) and calls fn with a Tx on it. It returns fn's error, or
// WATCH's. Without an EXEC, it sends UNWATCH; a connection that failed is
// dropped by the pool instead.
func (c *Conn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	ran, key := false, ""
	if len(keys) > 0 {
		key = keys[0]
	}
	var fnErr error
	err := c.run(ctx, radix.WithConn(key, func(ctx context.Context, conn radix.Conn) error {
		t := &tx{conn: conn}
		if err := t.send(ctx, nil, append([]string{"WATCH"}, keys...)); err != nil {
			return err
		}
		ran, fnErr = true, fn(t)
		if !t.done {
			_ = t.send(ctx, nil, []string{"UNWATCH"})
		}
		return t.broken // not nil: the pool drops conn
	}))
	if ran {
		return fnErr
	}
	return err
}

type tx struct {
	conn   radix.Conn
	done   bool  // EXEC ended the watch
	broken error // what left conn out of step
}

// send pipelines cmds and reads their replies into rcv (nil: one, dropped).
func (t *tx) send(ctx context.Context, rcv any, cmds ...[]string) error {
	if t.broken != nil {
		return t.broken
	} else if rcv == nil {
		rcv = new(any)
	}
	err := encodeDecode(ctx, t.conn, commands(cmds), rcv)
	if !inStep(err) {
		t.broken = err
	}
	return err
}

func (t *tx) Get(ctx context.Context, key string) (string, bool, error) {
	var r any
	if err := t.send(ctx, &r, []string{"GET", key}); err != nil {
		return "", false, translate(ctx, err)
	}
	return getReply(r)
}

// Exec pipelines MULTI, cmds and EXEC.
func (t *tx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	for _, c := range cmds {
		if len(c) == 0 {
			return nil, errors.New("relock/radix: an empty command in Exec")
		}
	}
	all := append(append(commands{{"MULTI"}}, cmds...), []string{"EXEC"})
	r := newReplies(len(all))
	if err := t.send(ctx, r, all...); err != nil {
		return nil, translate(ctx, err)
	}
	t.done = true // EXEC unwatches, whatever it answered
	last := len(all) - 1
	// EXECABORT or an error inside EXEC first, then MULTI's or a queued
	// command's (miniredis runs EXEC after those).
	for _, err := range append(r.errs[last:], r.errs[:last]...) {
		if err != nil {
			return nil, translate(ctx, err)
		}
	}
	v, err := convert(r.vals[last])
	if a, ok := v.([]any); ok || err != nil {
		return a, err
	} else if v == nil {
		return nil, driver.ErrTxAborted
	}
	return nil, fmt.Errorf("relock/radix: unexpected reply %T (%v) to EXEC", v, v)
}
