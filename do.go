package relock

import (
	"context"
	"errors"
	"time"
)

// Do runs fn while holding the lock named key: it obtains the lock as
// Obtain does (opts apply), keeps it alive with auto-refresh, and passes fn
// a context that is cancelled, with the lock's Err as its cause, as soon as
// the lock is lost. When fn returns, or panics, Do releases the lock (even
// if ctx has ended, within the lock's TTL) and returns fn's error joined
// with any release error; a panic goes on after the release.
//
// fn must stop its work when its context ends: from then on another owner
// may hold the lock.
func (c *Client) Do(ctx context.Context, key string, ttl time.Duration, fn func(ctx context.Context) error, opts ...Option) (err error) {
	if fn == nil {
		return invalid("nil function")
	}
	l, err := c.Obtain(ctx, key, ttl, append(opts, WithAutoRefresh())...)
	if err != nil {
		return err
	}
	fctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(l.lifeCtx(), func() { cancel(l.Err()) })
	defer func() {
		stop()
		cancel(nil)
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), min(ttl, 5*time.Second))
		rerr := l.Release(rctx)
		rcancel()
		if r := recover(); r != nil {
			panic(r)
		}
		err = errors.Join(err, rerr)
	}()
	return fn(fctx)
}
