package relock

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// A Lock is one obtained lock: a key that holds our random token until it
// expires or is released. Its methods are safe for concurrent use.
//
// A Lock knows how long it is valid: a lower bound of when Redis drops the
// key, less a drift margin (TTL/100 + 2ms) for clock rate differences.
// Every write that sets the key's expiry (the obtain, a hand-over, each
// Refresh, by hand or automatic) sets the validity from that write alone:
// its send time plus its TTL, whether that is earlier or later than before.
// A write whose outcome is unknown (a timeout) may only shorten it, and a
// TTL read that finds less time left than the lock believed shortens it
// too. Done closes, and Err tells why, when the lock ends: released, found
// lost, or past its validity, whether or not Redis answers. Each lock ends
// exactly once, and its observer hears of that end exactly once, from
// whichever call notices it first.
type Lock struct {
	client     *Client
	req        obtainReq // key, token, ttl and what the obtain asked for
	fence      int64
	obtainedAt time.Time
	observer   Observer      // nil: no events
	minHold    time.Duration // WithMinHold: Release keeps the key until obtainedAt+minHold
	// ctxObs is observer when it is a ContextObserver, nil otherwise.
	ctxObs ContextObserver
	// ready, made only for an auto-refreshed lock with a ContextObserver,
	// is closed once Obtain has emitted EventObtained: the refresher waits
	// for it, so that no event of the lock comes before that one and all
	// have the lock's context.
	ready chan struct{}
	// rtt is the last round trip seen for the lock (its obtain's tries,
	// then each refresh), in nanoseconds: how long Release lets a refresh
	// on the wire finish.
	rtt atomic.Int64
	// endReleased and endClosed are the causes the lock ends with when
	// released or closed (see because), set by newLock and never changed,
	// so that ending allocates nothing.
	endReleased, endClosed lockEnd

	// writes orders the calls that set the key's expiry (Refresh, by hand
	// or automatic): one at a time, so that the last one to return is the
	// last one Redis applied, and the validity follows it.
	writes sync.Mutex
	// releases orders the releases (Release, Do's release) among
	// themselves. A release that deletes the key does not wait for
	// writes: see releaseSoon.
	releases sync.Mutex

	mu sync.Mutex
	// life ends when the lock does; its cause says why. It and the expiry
	// timer are made on first use (Done, Err, auto-refresh): until then
	// endCause records an end.
	life       context.Context
	end        context.CancelCauseFunc
	endCause   error
	settled    bool               // no longer ours to act on: released, or found not ours
	ttl        time.Duration      // the TTL of the last write: auto-refresh renews to it
	validUntil time.Time          // when the lock stops being safe to rely on
	expiry     *time.Timer        // ends life at validUntil
	stopAuto   context.CancelFunc // stops the refresher, if any
	cutAuto    context.CancelFunc // cuts the refresh it has on the wire
	autoDone   chan struct{}      // closed when the refresher is gone
	obsCtx     context.Context    // the lock's context, for a ContextObserver
	// confirming, made by takeOverEarly for a lock given before its
	// hand-over was confirmed, is closed once the confirmation has
	// answered (or failed) and the validity follows it: Release and the
	// refresher wait for it.
	confirming chan struct{}
	// releasing is set while a release that did not wait for writes is
	// on the wire; goneSeen records that a refresh meanwhile found the
	// key not ours, which ends the lock as lost should the release fail.
	releasing, goneSeen bool
}

// drift is the margin taken off a lock's validity for clock drift between
// this process and Redis, as the Redlock algorithm does.
func drift(ttl time.Duration) time.Duration { return ttl/100 + 2*time.Millisecond }

// newLock makes l, whose req the obtain filled, a lock obtained no earlier
// than at.
func (c *Client) newLock(l *Lock, fence int64, at time.Time, st *settings) (*Lock, error) {
	req := &l.req
	l.client, l.fence, l.obtainedAt, l.observer, l.minHold = c, fence, at, st.observer, st.minHold
	l.ttl = req.ttl
	if l.validUntil.IsZero() {
		l.validUntil = validity(at, req.ttl)
	} // else a hand-over's claim, until its confirmation answers: takeOverEarly
	l.endReleased = lockEnd{key: req.key, reason: ErrReleased}
	l.endClosed = lockEnd{key: req.key, reason: ErrClosed}
	if st.observer != nil {
		l.ctxObs, _ = st.observer.(ContextObserver)
	}
	if st.autoRefresh {
		if l.ctxObs != nil && l.ready == nil {
			l.ready = make(chan struct{}) // closed by Obtain
		}
		if !c.startAutoRefresh(l) {
			l.finish(l.because(ErrClosed))
			c.cleanUp(req, false, nil)
			return nil, errorf("relock: obtain %q: %w", req.key, ErrClosed)
		}
	}
	return l, nil
}

// validity is how long a write sent at at with ttl lets the lock be relied
// on: until at+ttl, less the drift margin.
func validity(at time.Time, ttl time.Duration) time.Time {
	return at.Add(ttl - drift(ttl))
}

// setValidityLocked makes until the lock's validity, earlier or later than
// before, and moves the expiry timer with it. l.mu must be held.
func (l *Lock) setValidityLocked(until time.Time) {
	l.validUntil = until
	if l.expiry != nil && l.life.Err() == nil {
		l.expiry.Reset(time.Until(until))
	}
}

// wrote records a write sent at at that set the key's expiry to ttl: the
// validity now follows it alone. A lock that has ended stays ended.
func (l *Lock) wrote(at time.Time, ttl time.Duration) {
	l.mu.Lock()
	if !l.endedLocked() {
		l.ttl = ttl
		l.setValidityLocked(validity(at, ttl))
	}
	l.mu.Unlock()
}

// mayHaveWritten records a write sent at at whose outcome is unknown: if
// Redis applied it, the key expires no earlier than at+ttl, so the validity
// is whichever is earlier, that or the present one.
func (l *Lock) mayHaveWritten(at time.Time, ttl time.Duration) {
	l.mu.Lock()
	if until := validity(at, ttl); !l.endedLocked() && until.Before(l.validUntil) {
		l.setValidityLocked(until)
	}
	l.mu.Unlock()
}

// lifeLocked returns the lock's life context, making it and the expiry
// timer on first use, and reports whether it ended the lock because its
// validity had run out (the caller then emits the loss). l.mu must be
// held.
func (l *Lock) lifeLocked() (context.Context, bool) {
	if l.life != nil {
		return l.life, l.expireLocked()
	}
	l.life, l.end = context.WithCancelCause(context.Background())
	if l.endCause != nil {
		l.end(l.endCause)
		return l.life, false
	}
	l.expiry = time.AfterFunc(max(time.Until(l.validUntil), 0), l.expire)
	return l.life, l.expireLocked()
}

// expire ends the lock when its validity has run out; the timer calls it.
func (l *Lock) expire() {
	l.mu.Lock()
	ended := l.expireLocked()
	l.mu.Unlock()
	if ended {
		l.observe(nil, EventLost, context.Cause(l.life))
	}
}

// expireLocked ends the lock if its validity has run out and it has not
// ended yet, and reports whether it did. l.mu must be held and l.life made.
func (l *Lock) expireLocked() bool {
	if l.life.Err() != nil || time.Now().Before(l.validUntil) {
		return false
	}
	l.end(errorf("relock: %q: %w: validity ran out without a successful refresh", l.req.key, ErrLost))
	l.expiry.Stop()
	return true
}

// observe tells the observer, if any, about the lock. ctx is the context
// of the call the event belongs to, nil for the lock's.
func (l *Lock) observe(ctx context.Context, kind EventKind, err error) {
	if l.observer == nil {
		return
	}
	now := time.Now()
	e := Event{Kind: kind, Key: l.req.key, Time: now, Fence: l.fence, Held: now.Sub(l.obtainedAt), TTL: l.req.ttl, Err: err}
	if l.ctxObs == nil {
		l.observer.Observe(e)
		return
	}
	if ctx == nil {
		ctx = l.lockCtx()
	}
	l.ctxObs.ObserveContext(ctx, e)
}

// lockCtx returns the lock's context for a ContextObserver: what it
// returned for EventObtained, or context.Background.
func (l *Lock) lockCtx() context.Context {
	l.mu.Lock()
	ctx := l.obsCtx
	l.mu.Unlock()
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

// setLockCtx records ctx, what a ContextObserver returned for the lock's
// EventObtained (nil: base), as the lock's context.
func (l *Lock) setLockCtx(ctx, base context.Context) {
	if ctx == nil {
		ctx = base
	}
	l.mu.Lock()
	l.obsCtx = ctx
	l.mu.Unlock()
}

// begin tells a ContextObserver, if any, that a call of kind
// (EventRefreshing, EventReleasing) is about to be sent, and returns the
// call's context; nil without a ContextObserver. Every begin is followed
// by one done with what it returned.
func (l *Lock) begin(kind EventKind, ttl time.Duration) context.Context {
	if l.ctxObs == nil {
		return nil
	}
	lctx := l.lockCtx()
	ctx := l.ctxObs.ObserveContext(lctx, Event{Kind: kind, Key: l.req.key, Time: time.Now(), Fence: l.fence, TTL: ttl})
	if ctx == nil {
		ctx = lctx
	}
	return ctx
}

// done tells the ContextObserver that the call begin began, whose context
// is ctx (nil: none began), returned err.
func (l *Lock) done(ctx context.Context, err error) {
	if ctx == nil {
		return
	}
	l.ctxObs.ObserveContext(ctx, Event{Kind: EventDone, Key: l.req.key, Time: time.Now(), Fence: l.fence, TTL: l.req.ttl, Err: err})
}

// lifeCtx returns the lock's life context, ended first if the validity has
// run out, so that no caller sees the lock as valid past ValidUntil even
// before the timer fires.
func (l *Lock) lifeCtx() context.Context {
	l.mu.Lock()
	life, ended := l.lifeLocked()
	l.mu.Unlock()
	if ended {
		l.observe(nil, EventLost, context.Cause(life))
	}
	return life
}

// ended reports whether the lock has ended. l.mu must be held.
func (l *Lock) endedLocked() bool {
	if l.life != nil {
		return l.life.Err() != nil
	}
	return l.endCause != nil
}

// finish ends the lock with cause, unless it ended already, and reports
// whether it did.
func (l *Lock) finish(cause error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.life == nil {
		if l.endCause == nil {
			l.endCause = cause
			return true
		}
		return false
	}
	if l.life.Err() != nil {
		return false
	}
	l.end(cause)
	l.expiry.Stop()
	return true
}

// The accessors are safe on a nil *Lock: they return zero values, and Err
// and Done report the lock as ended (ErrInvalidArgument).

// Key returns the lock's name, as given to Obtain or Attach: without the
// Client's prefix (WithKeyPrefix), so that Inspect and Attach on the same
// Client take it back as is.
func (l *Lock) Key() string {
	if l == nil {
		return ""
	}
	return l.req.key[l.req.plen:]
}

// RedisKey returns the lock's Redis key: the Client's prefix followed by
// Key. It is Key on a Client without a prefix.
func (l *Lock) RedisKey() string {
	if l == nil {
		return ""
	}
	return l.req.key
}

// Token returns the random value that marks this acquisition as ours: 32
// hexadecimal digits, never reused.
func (l *Lock) Token() string {
	if l == nil {
		return ""
	}
	return l.req.token
}

// ObtainedAt returns a moment no later than when Redis set the key's
// expiry for us: usually when the winning try was sent; for a lock handed
// over on release, when the write that confirmed the hand-over was sent;
// for a lock found already ours, a moment derived from the server's
// answer. The key expires no earlier than ObtainedAt().Add(ttl) unless a
// later Refresh changed it; ValidUntil follows every such write.
func (l *Lock) ObtainedAt() time.Time {
	if l == nil {
		return time.Time{}
	}
	return l.obtainedAt
}

// Fence returns the lock's fencing number when it was obtained with
// WithFencing, and 0 otherwise. Numbers strictly increase across all the
// holders of a key: pass it with every write to storage that should reject
// a holder whose lock has since expired.
func (l *Lock) Fence() int64 {
	if l == nil {
		return 0
	}
	return l.fence
}

// ValidUntil returns the moment until which the lock can be relied on if
// nothing else is heard from Redis: its TTL from the last successful obtain
// or refresh, less the drift margin.
func (l *Lock) ValidUntil() time.Time {
	if l == nil {
		return time.Time{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.validUntil
}

// Done returns a channel that is closed when the lock ends: released, found
// lost, or past its validity. It never closes while the lock is safely held.
func (l *Lock) Done() <-chan struct{} {
	if l == nil {
		return closedChan
	}
	return l.lifeCtx().Done()
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Err returns nil while the lock is held, and after Done closes the reason:
// ErrReleased, an error matching ErrLost (and ErrNotHeld when a refresh
// found the key gone or another owner's), or ErrClosed when the Client was
// closed under an auto-refreshed lock.
func (l *Lock) Err() error {
	if l == nil {
		return invalid("nil lock")
	}
	life := l.lifeCtx()
	if life.Err() == nil {
		return nil
	}
	return context.Cause(life)
}

func (l *Lock) check(ctx context.Context, op string) error {
	if err := l.checkLock(ctx, op); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return errorf("relock: %s %q: %w", op, l.req.key, err)
	}
	return nil
}

// checkLock is check without the context's end: Release goes on past it.
func (l *Lock) checkLock(ctx context.Context, op string) error {
	if l == nil || l.client == nil {
		return invalid("nil lock")
	}
	if ctx == nil {
		return invalid("nil context")
	}
	if l.client.closed.Load() {
		return errorf("relock: %s %q: %w", op, l.req.key, ErrClosed)
	}
	return nil
}

// endedCause returns nil while l is valid, and otherwise the cause it ended
// with. It ends a lock whose validity has run out, and emits that loss,
// without making the life context.
func (l *Lock) endedCause() error {
	var cause error
	ended := false
	l.mu.Lock()
	switch {
	case l.life != nil:
		ended = l.expireLocked()
		if l.life.Err() != nil {
			cause = context.Cause(l.life)
		}
	case l.endCause != nil:
		cause = l.endCause
	case !time.Now().Before(l.validUntil):
		l.endCause = errorf("relock: %q: %w: validity ran out without a successful refresh", l.req.key, ErrLost)
		cause, ended = l.endCause, true
	}
	l.mu.Unlock()
	if ended {
		l.observe(nil, EventLost, cause)
	}
	return cause
}

// endedError is the error of op on a lock that ended with cause: it
// matches ErrNotHeld and the cause.
func (l *Lock) endedError(op string, cause error) error {
	if errors.Is(cause, ErrNotHeld) {
		return errorf("relock: %s %q: %w", op, l.req.key, cause)
	}
	return errorf("relock: %s %q: %w: %w", op, l.req.key, ErrNotHeld, cause)
}

// notHeld records that the key was found not ours and returns the error.
// ctx is the call's context for the observer (nil: the lock's).
func (l *Lock) notHeld(ctx context.Context, op string) error {
	l.mu.Lock()
	l.settled = true
	l.mu.Unlock()
	err := errorf("relock: %s %q: %w", op, l.req.key, ErrNotHeld)
	if l.finish(errorf("relock: %s %q: %w: %w", op, l.req.key, ErrLost, ErrNotHeld)) {
		l.observe(ctx, EventLost, l.Err())
	}
	return err
}

// because is the cause a lock ends with for reason, a sentinel: wrapped
// with the key, so that Err's text says "relock:" and which lock.
func (l *Lock) because(reason error) error {
	switch {
	case reason == ErrReleased && l.endReleased.reason != nil:
		return &l.endReleased
	case reason == ErrClosed && l.endClosed.reason != nil:
		return &l.endClosed
	}
	return &lockEnd{key: l.req.key, reason: reason}
}

// lockEnd is the cause of a lock's end. The Lock holds the ones it ends
// with most (released, closed), so that the release path allocates none;
// its text is built only when someone reads it.
type lockEnd struct {
	key    string
	reason error
}

func (e *lockEnd) Error() string { return "relock: " + strconv.Quote(e.key) + ": " + e.reason.Error() }
func (e *lockEnd) Unwrap() error { return e.reason }

// released ends the lock as released, if it had not ended, and emits that
// with ctx, the call's context for the observer (nil: the lock's).
func (l *Lock) released(ctx context.Context) {
	l.mu.Lock()
	l.settled = true
	l.mu.Unlock()
	if l.finish(l.because(ErrReleased)) {
		l.observe(ctx, EventReleased, nil)
	}
}

// Release stops the lock's auto-refresh, if any, and deletes the key if it
// still holds our token (or hands it to the next waiter). It returns nil
// once the lock is released, also when called again. When the lock had
// already ended otherwise, it still deletes the key if it holds our token
// (so that others need not wait for it to expire), and returns an error
// matching ErrNotHeld and the lock's Err: ErrLost when its validity ran out
// or a call found it gone or another owner's (whose key is left alone).
// A lock obtained WithMinHold is, before the hold ends, released by
// setting the key's expiry to the hold's end instead of deleting it.
//
// ctx bounds the call to Redis while it is live. A ctx that has already
// ended (cancelled, or past its deadline, as the context of work that took
// longer than planned often is) does not stop Release: it then runs with
// ctx's values but without its cancellation, bounded by the lock's TTL or
// ReleaseTimeout, whichever is shorter. So "defer l.Release(ctx)" with the
// context that obtained the lock is right, however long the work took.
func (l *Lock) Release(ctx context.Context) error {
	if err := l.checkLock(ctx, "release"); err != nil {
		return err
	}
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), min(l.currentTTL(), ReleaseTimeout))
		defer cancel()
	}
	return l.releaseSoon(ctx)
}

// releaseSoon stops the auto-refresh, if any, and releases the lock. A
// release that deletes the key (or hands it over) is sent at once, also
// while a refresh is on the wire, and the refresher is waited for after
// it: on a slow link, waiting for the refresh first delayed the hand-over
// by up to two round trips (issue 19.2). That is safe because both scripts
// check the token: a refresh that reaches Redis after the release finds
// the key gone or another owner's and writes nothing, and its "not ours"
// does not count as a loss (the release's answer decides). A release
// within the minimum hold (WithMinHold) is itself a write of the expiry:
// it waits for the refresh, so that it is the last write.
func (l *Lock) releaseSoon(ctx context.Context) error {
	if l.minHoldLeft() > 0 {
		l.stopAutoRefresh(ctx)
		return l.release(ctx, true)
	}
	finish := l.haltAutoRefresh()
	err := l.release(ctx, false)
	finish(ctx)
	if l.confirming != nil {
		<-l.confirming // bounded by the claim
	}
	return err
}

// confirmed files the answer to the confirmation of a hand-over that
// takeOverEarly gave before it answered, sent at at; the caller holds
// l.writes. The key now expires ttl after it (the validity follows that
// write), or, without an answer, may (the validity stays the claim's, the
// earlier), or did not hold our token: lost, unless a release on the wire
// overtook it (its answer decides, as for a refresh).
func (l *Lock) confirmed(at time.Time, ok bool, err error) {
	switch {
	case err != nil:
		l.mayHaveWritten(at, l.req.ttl)
	case ok:
		l.wrote(at, l.req.ttl)
	default:
		if !l.goneWhileReleasing() {
			_ = l.notHeld(nil, "obtain")
		}
	}
}

// goneWhileReleasing is for a write that found the key not ours: when a
// release that did not wait for writes is on the wire, it may have run
// first, so the release's answer decides (goneSeen records the finding
// for it, see release), and it reports true; otherwise false, and the
// caller ends the lock as lost.
func (l *Lock) goneWhileReleasing() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.releasing {
		l.goneSeen = true
	}
	return l.releasing
}

// minHoldLeft is how much of the minimum hold (WithMinHold) is left, rounded
// up to a whole millisecond (the precision of PX); 0 when none is.
func (l *Lock) minHoldLeft() time.Duration {
	if l.minHold <= 0 {
		return 0
	}
	left := time.Until(l.obtainedAt.Add(l.minHold))
	if left <= 0 {
		return 0
	}
	return (left + time.Millisecond - 1).Truncate(time.Millisecond)
}

// ReleaseTimeout bounds a Release called with a context that has already
// ended (see Lock.Release), and Client.Do's release after fn: the lock's TTL
// bounds them too, since Redis drops the key by then anyway.
const ReleaseTimeout = 5 * time.Second

// release deletes the key if it holds our token and ends the lock; within
// the minimum hold (holding, as releaseSoon found it), it sets the key's
// expiry to the hold's end instead, as the last of the lock's writes.
func (l *Lock) release(ctx context.Context, holding bool) (err error) {
	l.releases.Lock()
	defer l.releases.Unlock()
	if holding {
		l.writes.Lock()
		defer l.writes.Unlock()
	} else {
		l.mu.Lock()
		l.releasing, l.goneSeen = true, false
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			gone := l.goneSeen
			l.releasing, l.goneSeen = false, false
			l.mu.Unlock()
			if gone && err != nil && !errors.Is(err, ErrNotHeld) {
				// No answer to the release, but a refresh meanwhile found
				// the key not ours: the lock is gone either way.
				_ = l.notHeld(nil, "refresh")
			}
		}()
	}
	cause := l.endedCause()
	if errors.Is(cause, ErrReleased) {
		return nil
	}
	l.mu.Lock()
	settled := l.settled
	l.mu.Unlock()
	if settled {
		return l.endedError("release", cause)
	}
	cctx := l.begin(EventReleasing, l.req.ttl)
	defer func() { l.done(cctx, err) }()
	var ok bool
	if left := l.minHoldLeft(); holding && left > 0 && cause == nil {
		// WithMinHold: let the key expire when the minimum hold ends.
		ok, _, err = l.req.path.refresh(ctx, l.req.keys, l.req.token, left, nil)
	} else {
		ok, err = l.req.path.release(ctx, l.req.keys, l.req.token, false)
	}
	if err != nil {
		return opError("release", l.req.key, err)
	}
	if !ok && cause == nil {
		return l.notHeld(cctx, "release")
	}
	if cause != nil {
		// Ended before (validity ran out, say): whether the key was still
		// ours to delete or already gone, the error names that end.
		l.mu.Lock()
		l.settled = true
		l.mu.Unlock()
		return l.endedError("release", cause)
	}
	l.released(cctx)
	return nil
}

// Refresh sets the lock's remaining lifetime to ttl if the key still holds
// our token, and returns an error matching ErrNotHeld otherwise (the lock
// is then lost). The lock's validity then follows this write alone: a
// shorter ttl shortens it. On an auto-refreshed lock, later automatic
// refreshes renew to ttl. With WithReplicas, it also waits for the
// replicas, and releases the lock when too few acknowledge.
//
// A lock that has already ended (released, lost, or past its validity) is
// not refreshed: the error matches ErrNotHeld and the lock's Err. A
// refresh that fails without an answer (a timeout) leaves the lock valid
// only until the earlier of its validity and what the refresh would have
// set, since Redis may have applied it.
func (l *Lock) Refresh(ctx context.Context, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	if err := l.check(ctx, "refresh"); err != nil {
		return err
	}
	return l.refresh(ctx, ttl)
}

// refresh refreshes the lock to ttl; 0 means the TTL of the lock's last
// write (auto-refresh), read once no other write is in flight.
func (l *Lock) refresh(ctx context.Context, ttl time.Duration) (err error) {
	l.writes.Lock()
	defer l.writes.Unlock()
	if cause := l.endedCause(); cause != nil {
		return l.endedError("refresh", cause)
	}
	if ttl == 0 {
		ttl = l.currentTTL()
	}
	cctx := l.begin(EventRefreshing, ttl)
	defer func() { l.done(cctx, err) }()
	at := time.Now()
	ok, acked, err := l.req.path.refresh(ctx, l.req.keys, l.req.token, ttl, l.req.wait)
	if err != nil {
		l.mayHaveWritten(at, ttl)
		err = opError("refresh", l.req.key, err)
		if !errors.Is(ctx.Err(), context.Canceled) {
			// Not a refresh that Release, Close or the caller called off.
			l.observe(cctx, EventRefreshFailed, err)
		}
		return err
	}
	if !ok {
		if l.goneWhileReleasing() {
			return errorf("relock: refresh %q: %w", l.req.key, ErrNotHeld)
		}
		return l.notHeld(cctx, "refresh")
	}
	l.rtt.Store(int64(time.Since(at)))
	l.wrote(at, ttl)
	if w := l.req.wait; w != nil && acked < w.n {
		rerr := l.releaseLocked(context.WithoutCancel(ctx), cctx)
		return errors.Join(errorf("relock: refresh %q: %w: %d of %d within %v; released", l.req.key, ErrTooFewReplicas, acked, w.n, w.timeout), rerr)
	}
	if l.observer != nil {
		e := Event{Kind: EventRefreshed, Key: l.req.key, Time: time.Now(), Fence: l.fence, TTL: ttl}
		if l.ctxObs != nil {
			l.ctxObs.ObserveContext(cctx, e)
		} else {
			l.observer.Observe(e)
		}
	}
	return nil
}

// releaseLocked is release for a caller that holds l.writes; cctx is the
// caller's call context for the observer.
func (l *Lock) releaseLocked(ctx, cctx context.Context) error {
	ok, err := l.req.path.release(ctx, l.req.keys, l.req.token, false)
	switch {
	case err != nil:
		return opError("release", l.req.key, err)
	case !ok:
		return l.notHeld(cctx, "release")
	}
	l.released(cctx)
	return nil
}

// TTL returns the lock's remaining lifetime if the key still holds our
// token, and an error matching ErrNotHeld otherwise, or when the lock has
// already ended. A negative duration means the key has no expiry (someone
// outside relock removed it). When the key has less time left than the
// lock's validity assumed (someone outside relock shortened it), the
// validity shrinks to match. On a lock handed over and given before its
// confirmation answered, TTL waits for that answer first (a round trip),
// so that it reads the TTL the lock asked for, not the hand-over's claim.
func (l *Lock) TTL(ctx context.Context) (time.Duration, error) {
	if err := l.check(ctx, "ttl"); err != nil {
		return 0, err
	}
	if c := l.confirming; c != nil {
		select {
		case <-c:
		case <-ctx.Done():
			return 0, opError("ttl", l.req.key, ctx.Err())
		}
	}
	if cause := l.endedCause(); cause != nil {
		return 0, l.endedError("ttl", cause)
	}
	sent := time.Now()
	d, ok, err := l.req.path.pttl(ctx, l.req.keys, l.req.token)
	if err != nil {
		return 0, opError("ttl", l.req.key, err)
	}
	if !ok {
		return 0, l.notHeld(nil, "ttl")
	}
	if d >= 0 {
		// The key expires no earlier than sent+d.
		l.mayHaveWritten(sent, d)
	}
	return d, nil
}
