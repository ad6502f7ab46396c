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

// Eval runs EVAL script numkeys keys... args... and returns the reply
// mapped as the relock/driver package documents.
func (c *Conn) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	return c.eval(ctx, keys, evalArgs("EVAL", script, keys, args))
}

// EvalSha runs EVALSHA sha1 numkeys keys... args.... When the server does
// not have the script it returns an error matching driver.ErrNoScript (and
// does not fall back to EVAL itself, as radix.EvalScript would).
func (c *Conn) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	return c.eval(ctx, keys, evalArgs("EVALSHA", sha1, keys, args))
}

func (c *Conn) eval(ctx context.Context, keys, args []string) (any, error) {
	var r any
	if err := c.do(ctx, keys, &r, args...); err != nil {
		return nil, err
	}
	return convert(r)
}

// evalArgs returns the command EVAL or EVALSHA with its arguments.
func evalArgs(cmd, script string, keys, args []string) []string {
	a := make([]string, 0, 3+len(keys)+len(args))
	a = append(a, cmd, script, strconv.Itoa(len(keys)))
	return append(append(a, keys...), args...)
}

// EvalShaWait sends EVALSHA sha1 numkeys keys... args... and WAIT replicas
// timeout-in-ms pipelined on one connection, and returns the script's
// reply and the number of replicas that acknowledged the connection's
// writes. A script unknown to the server gives an error matching
// driver.ErrNoScript. When the script ran but WAIT failed, the error says
// so and the script's reply is returned with it. The WAIT timeout must be
// positive; it goes out rounded up to whole milliseconds.
func (c *Conn) EvalShaWait(ctx context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return c.evalWait(ctx, evalArgs("EVALSHA", sha1, keys, args), keys, replicas, timeout)
}

// EvalWait is EvalShaWait with EVAL script instead of EVALSHA.
func (c *Conn) EvalWait(ctx context.Context, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return c.evalWait(ctx, evalArgs("EVAL", script, keys, args), keys, replicas, timeout)
}

func (c *Conn) evalWait(ctx context.Context, eval, keys []string, replicas int, timeout time.Duration) (any, int, error) {
	ms, err := driver.WaitTimeout(replicas, timeout)
	if err != nil {
		return nil, 0, fmt.Errorf("relock/radix: %w", err)
	}
	r := newReplies(2)
	wait := []string{"WAIT", strconv.Itoa(replicas), strconv.FormatInt(ms, 10)}
	if err := c.run(ctx, &action{keys: keys, cmds: commands{eval, wait}, rcv: r}); err != nil {
		return nil, 0, err
	}
	if r.errs[0] != nil {
		return nil, 0, translate(ctx, r.errs[0])
	}
	v, err := convert(r.vals[0])
	if err != nil {
		return nil, 0, err
	}
	if r.errs[1] != nil {
		return v, 0, fmt.Errorf("relock/radix: WAIT after the script: %w", translate(ctx, r.errs[1]))
	}
	n, ok := r.vals[1].(int64)
	if !ok {
		return v, 0, fmt.Errorf("relock/radix: unexpected reply %T (%v) to WAIT", r.vals[1], r.vals[1])
	}
	return v, int(n), nil
}

// Watch takes one connection from the client (radix.WithConn, routed by
// the first key on a cluster), runs WATCH keys... on it and calls fn with a
// Tx bound to that connection. It returns fn's error (or WATCH's). When fn
// returns without an EXEC, Watch runs UNWATCH before the connection goes
// back to the pool; a connection that failed meanwhile is dropped instead.
func (c *Conn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	key := ""
	if len(keys) > 0 {
		key = keys[0]
	}
	ran := false
	var fnErr error
	err := c.run(ctx, radix.WithConn(key, func(ctx context.Context, conn radix.Conn) error {
		t := &tx{conn: conn}
		if err := t.send(ctx, nil, append([]string{"WATCH"}, keys...)); err != nil {
			return err
		}
		ran = true
		fnErr = fn(t)
		if !t.done {
			_ = t.send(ctx, nil, []string{"UNWATCH"})
		}
		return t.broken // not nil: the pool drops the connection
	}))
	if ran {
		return fnErr
	}
	return err
}

// tx is the driver.Tx of Watch, on its connection.
type tx struct {
	conn   radix.Conn
	done   bool  // EXEC ended the watch
	broken error // the failure that left conn out of step
}

// send sends cmds, pipelined, on the connection and reads their replies
// into rcv (nil: one reply, discarded).
func (t *tx) send(ctx context.Context, rcv any, cmds ...[]string) error {
	if t.broken != nil {
		return t.broken
	}
	if rcv == nil {
		rcv = new(any)
	}
	err := encodeDecode(ctx, t.conn, commands(cmds), rcv)
	if !inStep(err) {
		t.broken = err
	}
	return err
}

// Get runs GET key on the watched connection.
func (t *tx) Get(ctx context.Context, key string) (string, bool, error) {
	var r any
	if err := t.send(ctx, &r, []string{"GET", key}); err != nil {
		return "", false, translate(ctx, err)
	}
	return getReply(r)
}

// Exec sends MULTI, cmds and EXEC pipelined on the watched connection.
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
	for _, i := range append([]int{last}, 0) { // EXECABORT or an error inside EXEC, MULTI refused
		if r.errs[i] != nil {
			return nil, translate(ctx, r.errs[i])
		}
	}
	for _, err := range r.errs { // a command refused while queued (miniredis runs EXEC anyway)
		if err != nil {
			return nil, translate(ctx, err)
		}
	}
	v, err := convert(r.vals[last])
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, driver.ErrTxAborted
	}
	if a, ok := v.([]any); ok {
		return a, nil
	}
	return nil, fmt.Errorf("relock/radix: unexpected reply %T (%v) to EXEC", v, v)
}
