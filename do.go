package relock

import (
	"context"
	"errors"
	"time"
)

// Do runs fn while holding the lock named key: it obtains the lock as
// Obtain does (opts apply), keeps it alive with auto-refresh, and passes fn
// a context that is cancelled, with the lock's Err as its cause, as soon as
// the lock is lost. When fn returns, or panics, Do releases the lock and
// returns fn's error, joined with the lock's Err (matching ErrLost) if the
// lock was lost meanwhile, or with the release's error; a panic goes on
// after the release. With WithMinHold, the release leaves the key to
// expire at the end of the minimum hold.
//
// Do waits for the lock as Obtain does: on several replicas that fire
// together, each runs fn in turn. To run fn on one of them only, use
// DoOnce.
//
// Do returns by ctx's deadline: a release that ctx leaves no time for, or
// that fails, goes on in the background within the lock's TTL (Client.Close
// waits for it).
//
// fn must stop its work when its context ends: from then on another owner
// may hold the lock.
func (c *Client) Do(ctx context.Context, key string, ttl time.Duration, fn func(ctx context.Context) error, opts ...Option) (err error) {
	if fn == nil {
		return invalid("nil function")
	}
	// A copy: appending to opts could write into the caller's array.
	all := make([]Option, 0, len(opts)+1)
	all = append(append(all, opts...), WithAutoRefresh())
	l, err := c.Obtain(ctx, key, ttl, all...)
	if err != nil {
		return err
	}
	base := ctx
	if l.ctxObs != nil {
		// The lock's context: ctx with what the observer added (a span).
		base = l.lockCtx()
	}
	fctx, cancel := context.WithCancelCause(base)
	stop := context.AfterFunc(l.lifeCtx(), func() { cancel(l.Err()) })
	defer func() {
		stop()
		cancel(nil)
		rerr := l.releaseForDo(ctx)
		if r := recover(); r != nil {
			panic(r)
		}
		if lerr := l.Err(); lerr != nil && !errors.Is(lerr, ErrReleased) {
			err = errors.Join(err, lerr) // lost while fn ran
		} else {
			err = errors.Join(err, rerr)
		}
	}()
	return fn(fctx)
}

// DoOnce runs fn if the lock named key is free, and skips it otherwise: it
// is Do with one try (TryObtain), for work that one replica of several
// should run when they all fire together, such as a cron job. It returns
// an error matching ErrNotObtained when another owner holds the lock (fn
// did not run: skipped), one matching ErrUnavailable when Redis could not
// be used (fn did not run, and nobody may have run it: not a skip), and
// otherwise what Do returns.
//
// Replicas whose timers fire at slightly different times would each run
// the job if it ends before the latest one fires: give WithMinHold a span
// longer than the timers' spread and shorter than the job's period, so
// that the lock stays held until then however quickly fn returns:
//
//	err := c.DoOnce(ctx, "nightly-report", time.Minute, report, relock.WithMinHold(10*time.Minute))
//	switch {
//	case errors.Is(err, relock.ErrNotObtained):
//		// another replica runs it, or ran it less than 10 minutes ago
//	case err != nil:
//		// Redis down, or report failed
//	}
func (c *Client) DoOnce(ctx context.Context, key string, ttl time.Duration, fn func(ctx context.Context) error, opts ...Option) error {
	all := make([]Option, 0, len(opts)+1)
	return c.Do(ctx, key, ttl, fn, append(append(all, opts...), tryOnce...)...)
}

// releaseForDo releases l within ctx; when ctx has ended or the release
// fails for a reason other than the lock being gone, the release goes on in
// the background.
func (l *Lock) releaseForDo(ctx context.Context) error {
	if err := l.check(ctx, "release"); err != nil {
		if errors.Is(err, ErrNotHeld) || errors.Is(err, ErrClosed) {
			return err
		}
		l.stopAutoRefresh(ctx)
		l.releaseInBackground()
		return nil
	}
	err := l.releaseSoon(ctx)
	if err != nil && !errors.Is(err, ErrNotHeld) {
		l.releaseInBackground()
		return nil
	}
	return err
}

// releaseInBackground releases l as the clean-up of a failed try does:
// retried, bounded, and waited for by Close. Within its minimum hold
// (WithMinHold) the key is left to expire instead: deleting it would
// undo the hold.
func (l *Lock) releaseInBackground() {
	if l.minHoldLeft() > 0 {
		l.released(nil)
		return
	}
	l.client.cleanUp(&obtainReq{path: l.req.path, keys: l.req.keys, token: l.req.token, ttl: l.currentTTL()}, false, nil)
	l.released(nil)
}
