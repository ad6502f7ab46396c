package relock

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/scripts"
)

// path is one way to run the owner-checked operations: Lua scripts, or
// WATCH/MULTI/EXEC. A Client picks one in New.
type path interface {
	// obtain tries once. ok is true when the key holds token afterwards.
	// holder is the remaining TTL of the current holder when known and the
	// key is someone else's, else -1.
	obtain(ctx context.Context, key, token string, ttl time.Duration) (ok bool, holder time.Duration, err error)
	// release deletes the key if it holds token.
	release(ctx context.Context, key, token string) (bool, error)
	// refresh sets the key's TTL if it holds token.
	refresh(ctx context.Context, key, token string, ttl time.Duration) (bool, error)
	// pttl returns the key's remaining TTL (-1: none) if it holds token.
	pttl(ctx context.Context, key, token string) (time.Duration, bool, error)
}

func millis(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

func asInt64(v any) (int64, error) {
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("relock: driver replied %T (%v) where an integer (int64) was due", v, v)
	}
	return n, nil
}

// scriptPath runs each operation as one Lua script call: EVALSHA, then EVAL
// when the server answers NOSCRIPT.
type scriptPath struct {
	conn driver.Conn
	s    driver.Scripter
}

func (p scriptPath) run(ctx context.Context, sc *scripts.Script, key string, args ...string) (any, error) {
	keys := []string{key}
	r, err := p.s.EvalSha(ctx, sc.SHA1, keys, args...)
	if err != nil && errors.Is(err, driver.ErrNoScript) {
		r, err = p.s.Eval(ctx, sc.Src, keys, args...)
	}
	return r, err
}

func (p scriptPath) obtain(ctx context.Context, key, token string, ttl time.Duration) (bool, time.Duration, error) {
	r, err := p.run(ctx, scripts.Obtain, key, token, millis(ttl))
	if err != nil {
		return false, -1, err
	}
	a, ok := r.([]any)
	if !ok || len(a) != 2 {
		return false, -1, fmt.Errorf("relock: driver replied %T (%v) to the obtain script where a two-integer array was due", r, r)
	}
	got, err := asInt64(a[0])
	if err != nil {
		return false, -1, err
	}
	ms, err := asInt64(a[1])
	if err != nil {
		return false, -1, err
	}
	holder := time.Duration(-1)
	if ms >= 0 {
		holder = time.Duration(ms) * time.Millisecond
	}
	return got == 1, holder, nil
}

func (p scriptPath) release(ctx context.Context, key, token string) (bool, error) {
	r, err := p.run(ctx, scripts.Release, key, token)
	if err != nil {
		return false, err
	}
	n, err := asInt64(r)
	return n == 1, err
}

func (p scriptPath) refresh(ctx context.Context, key, token string, ttl time.Duration) (bool, error) {
	r, err := p.run(ctx, scripts.Refresh, key, token, millis(ttl))
	if err != nil {
		return false, err
	}
	n, err := asInt64(r)
	return n == 1, err
}

func (p scriptPath) pttl(ctx context.Context, key, token string) (time.Duration, bool, error) {
	r, err := p.run(ctx, scripts.PTTL, key, token)
	if err != nil {
		return 0, false, err
	}
	n, err := asInt64(r)
	if err != nil || n == -3 || n == -2 {
		return 0, false, err
	}
	if n < 0 {
		return -1, true, nil
	}
	return time.Duration(n) * time.Millisecond, true, nil
}

// watchPath checks ownership with GET under WATCH and changes the key in
// MULTI/EXEC, trying again when EXEC aborts. Obtain is SET NX PX, then GET to
// recognise our own token.
type watchPath struct {
	conn driver.Conn
	w    driver.Watcher
}

// maxTxTries bounds the WATCH loop. EXEC aborts only when the lock's key
// changed between WATCH and EXEC, and the next GET sees the change, so a
// second try almost always settles it.
const maxTxTries = 16

var errTxContention = errors.New("relock: the key kept changing under WATCH")

// owned runs fn under WATCH key if the key holds token; it reports whether
// the key held token and fn's EXEC ran.
func (p watchPath) owned(ctx context.Context, key, token string, cmds ...[]string) (held bool, replies []any, err error) {
	for range maxTxTries {
		held, replies = false, nil
		err = p.w.Watch(ctx, []string{key}, func(tx driver.Tx) error {
			v, ok, err := tx.Get(ctx, key)
			if err != nil || !ok || v != token {
				return err
			}
			held = true
			replies, err = tx.Exec(ctx, cmds...)
			if err == nil && len(replies) != len(cmds) {
				err = fmt.Errorf("relock: driver returned %d replies to a transaction of %d commands", len(replies), len(cmds))
			}
			return err
		})
		if !errors.Is(err, driver.ErrTxAborted) {
			return held, replies, err
		}
		if ctx.Err() != nil {
			return false, nil, err
		}
	}
	return false, nil, errTxContention
}

func (p watchPath) obtain(ctx context.Context, key, token string, ttl time.Duration) (bool, time.Duration, error) {
	set, err := p.conn.SetNX(ctx, key, token, ttl)
	if err != nil || set {
		return set, -1, err
	}
	// The key existed. It may hold our own token: a client that retried a
	// SET NX whose reply was lost sees its own first write.
	v, ok, err := p.conn.Get(ctx, key)
	if err != nil {
		return false, -1, err
	}
	if !ok {
		return false, 0, nil // released in between: try again at once
	}
	return v == token, -1, nil
}

func (p watchPath) release(ctx context.Context, key, token string) (bool, error) {
	held, r, err := p.owned(ctx, key, token, []string{"DEL", key})
	if err != nil || !held {
		return false, err
	}
	n, err := asInt64(r[0])
	return n == 1, err
}

func (p watchPath) refresh(ctx context.Context, key, token string, ttl time.Duration) (bool, error) {
	held, r, err := p.owned(ctx, key, token, []string{"PEXPIRE", key, millis(ttl)})
	if err != nil || !held {
		return false, err
	}
	n, err := asInt64(r[0])
	return n == 1, err
}

func (p watchPath) pttl(ctx context.Context, key, token string) (time.Duration, bool, error) {
	held, r, err := p.owned(ctx, key, token, []string{"PTTL", key})
	if err != nil || !held {
		return 0, false, err
	}
	n, err := asInt64(r[0])
	if err != nil || n == -2 {
		return 0, false, err
	}
	if n < 0 {
		return -1, true, nil
	}
	return time.Duration(n) * time.Millisecond, true, nil
}
