package relock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/relock-go/relock/driver"
)

// A Redis user may be refused what relock's scripts need: the scripting
// commands themselves (an ACL user without @scripting), or the companion
// keys (an ACL key pattern that covers the lock key but not its queue).
// A refusal must never leave a lock that cannot be released, so
// permPath wraps the script path and, on the first refusal:
//
//   - of EVALSHA/EVAL: falls back to the WATCH/MULTI/EXEC path for the
//     rest of the Client's life, when the driver is a driver.Watcher (Redis
//     lets MULTI/EXEC through without @scripting); otherwise every
//     operation fails with ErrNoPermission, and Obtain never takes its
//     plain SET NX shortcut before a script call has gone through, so that
//     it cannot set a key it could not release; WithReplicas, whose WAIT
//     follows the script on its connection, fails with ErrNoPermission on
//     the WATCH path;
//   - of a companion key or channel: runs the scripts on the lock key
//     alone from then on (waiters poll instead of queueing; a release is
//     a plain compare-and-delete); WithFencing, whose counter is a
//     companion, fails with ErrNoPermission.
//
// An Obtain whose lock key itself is refused fails with ErrNoPermission;
// nothing was written.
type permPath struct {
	scriptPath
	watch *watchPath // nil: the driver has no WATCH
	st    *permState
}

type permState struct {
	noScripts    atomic.Bool // EVALSHA/EVAL refused: use watch
	noCompanions atomic.Bool // a companion key or channel refused
	proven       atomic.Bool // a script call went through
}

func newPermPath(p scriptPath, conn driver.Conn) permPath {
	pp := permPath{scriptPath: p, st: &permState{}}
	if w, ok := conn.(driver.Watcher); ok {
		pp.watch = &watchPath{conn: conn, w: w}
	}
	return pp
}

// scriptingRefused reports whether err is a NOPERM for running a script.
func scriptingRefused(err error) bool {
	if !errors.Is(err, driver.ErrNoPermission) {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "'eval") || strings.Contains(msg, "'evalsha")
}

// keyRefused reports whether err is a refusal of a key or channel.
func keyRefused(err error) bool {
	return errors.Is(err, driver.ErrNoPermission) && !scriptingRefused(err)
}

// noPermission wraps a refusal so that it matches ErrNoPermission.
func noPermission(err error, what string) error {
	return fmt.Errorf("%w (%s): %w", ErrNoPermission, what, err)
}

// permErr makes a refusal of a key or channel match ErrNoPermission.
func permErr(err error) error {
	if keyRefused(err) && !errors.Is(err, ErrNoPermission) {
		return noPermission(err, "a key or channel of the lock")
	}
	return err
}

// scriptRefusal makes the error of a call that only a script can serve
// (the semaphore's and the read-write lock's, which have no WATCH path)
// match ErrNoPermission when the server refused it: scripting itself, or
// one of its keys or channels.
func scriptRefusal(err error) error {
	if scriptingRefused(err) {
		return noPermission(err, "EVALSHA, EVAL: grant @scripting")
	}
	return permErr(err)
}

// scripts runs fn on the script path unless scripting was refused, and
// reports whether the caller should run it on the WATCH path instead.
func (p permPath) scripts(fn func() error) (fallback bool, err error) {
	if p.st.noScripts.Load() {
		if p.watch == nil {
			return false, noPermission(errors.New("the Redis user may not run scripts"), "EVALSHA")
		}
		return true, nil
	}
	err = fn()
	switch {
	case err == nil:
		p.st.proven.Store(true)
	case scriptingRefused(err):
		p.st.noScripts.Store(true)
		if p.watch != nil {
			return true, nil
		}
		return false, noPermission(err, "EVALSHA, EVAL: grant @scripting")
	}
	return false, err
}

// lockOnly is k without its companions.
func lockOnly(k lockKeys) lockKeys { return lockKeys{lock: k.lock} }

func (p permPath) obtain(ctx context.Context, q *obtainReq) (obtainRes, error) {
	var res obtainRes
	run := func() (err error) {
		if q.first && p.watch == nil && !p.st.proven.Load() {
			// No fallback: make sure scripts run before setting a key
			// that only a script could release.
			q.first = false
			defer func() { q.first = true }()
		}
		if p.st.noCompanions.Load() && q.keys.queue != "" {
			if q.fenced {
				return noPermission(errors.New("the fencing counter is a companion key the Redis user may not touch"), "fencing")
			}
			r := *q
			r.keys, r.mode = lockOnly(q.keys), noQueue
			res, err = p.scriptPath.obtain(ctx, &r)
			return err
		}
		res, err = p.scriptPath.obtain(ctx, q)
		if keyRefused(err) && q.keys.queue != "" && !q.fenced {
			// Perhaps only the companions are refused: try the lock key
			// alone; if that goes through, so will the others'.
			r := *q
			r.keys, r.mode = lockOnly(q.keys), noQueue
			if res, err = p.scriptPath.obtain(ctx, &r); err == nil {
				p.st.noCompanions.Store(true)
			}
		}
		return err
	}
	fallback, err := p.scripts(run)
	if fallback {
		if q.wait != nil {
			// WAIT must follow the write on its connection: the WATCH
			// path cannot send it, so it must not report 0 replicas.
			return res, noPermission(errors.New("WithReplicas needs scripts"), "EVALSHA")
		}
		return p.watch.obtain(ctx, q)
	}
	return res, permErr(err)
}

func (p permPath) release(ctx context.Context, k lockKeys, token string, leave bool) (bool, error) {
	var ok bool
	fallback, err := p.scripts(func() (err error) {
		if p.st.noCompanions.Load() {
			k = lockOnly(k)
		}
		ok, err = p.scriptPath.release(ctx, k, token, leave)
		if keyRefused(err) && k.queue != "" {
			if ok, err = p.scriptPath.release(ctx, lockOnly(k), token, false); err == nil {
				p.st.noCompanions.Store(true)
			}
		}
		return err
	})
	if fallback {
		return p.watch.release(ctx, k, token, leave)
	}
	return ok, permErr(err)
}

func (p permPath) refresh(ctx context.Context, k lockKeys, token string, ttl time.Duration, w *replicaWait) (bool, int, error) {
	var ok bool
	var acked int
	fallback, err := p.scripts(func() (err error) {
		ok, acked, err = p.scriptPath.refresh(ctx, k, token, ttl, w)
		return err
	})
	if fallback {
		if w != nil {
			return false, 0, noPermission(errors.New("WithReplicas needs scripts"), "EVALSHA")
		}
		return p.watch.refresh(ctx, k, token, ttl, nil)
	}
	return ok, acked, permErr(err)
}

func (p permPath) pttl(ctx context.Context, k lockKeys, token string) (time.Duration, bool, error) {
	var d time.Duration
	var ok bool
	fallback, err := p.scripts(func() (err error) {
		d, ok, err = p.scriptPath.pttl(ctx, k, token)
		return err
	})
	if fallback {
		return p.watch.pttl(ctx, k, token)
	}
	return d, ok, permErr(err)
}

func (p permPath) inspect(ctx context.Context, k lockKeys) (lockState, error) {
	var st lockState
	fallback, err := p.scripts(func() (err error) {
		if p.st.noCompanions.Load() {
			k = lockOnly(k)
		}
		st, err = p.scriptPath.inspect(ctx, k)
		if keyRefused(err) && k.queue != "" {
			if st, err = p.scriptPath.inspect(ctx, lockOnly(k)); err == nil {
				p.st.noCompanions.Store(true)
			}
		}
		return err
	})
	if fallback {
		return p.watch.inspect(ctx, k)
	}
	return st, permErr(err)
}
