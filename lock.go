package relock

import (
	"context"
	"errors"
	"fmt"
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
	observer   Observer // nil: no events
	// rtt is the last round trip seen for the lock (its obtain's tries,
	// then each refresh), in nanoseconds: how long Release lets a refresh
	// on the wire finish.
	rtt atomic.Int64

	// writes orders the calls that set the key's expiry (Refresh, by hand
	// or automatic): one at a time, so that the last one to return is the
	// last one Redis applied, and the validity follows it.
	writes sync.Mutex

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
}

// drift is the margin taken off a lock's validity for clock drift between
// this process and Redis, as the Redlock algorithm does.
func drift(ttl time.Duration) time.Duration { return ttl/100 + 2*time.Millisecond }

// newLock makes l, whose req the obtain filled, a lock obtained no earlier
// than at.
func (c *Client) newLock(l *Lock, fence int64, at time.Time, st *settings) (*Lock, error) {
	req := &l.req
	l.client, l.fence, l.obtainedAt, l.observer = c, fence, at, st.observer
	l.ttl, l.validUntil = req.ttl, validity(at, req.ttl)
	if st.autoRefresh {
		if !c.startAutoRefresh(l) {
			l.finish(ErrClosed)
			c.cleanUp(req, false, nil)
			return nil, fmt.Errorf("relock: obtain %q: %w", req.key, ErrClosed)
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
		l.observe(EventLost, context.Cause(l.life))
	}
}

// expireLocked ends the lock if its validity has run out and it has not
// ended yet, and reports whether it did. l.mu must be held and l.life made.
func (l *Lock) expireLocked() bool {
	if l.life.Err() != nil || time.Now().Before(l.validUntil) {
		return false
	}
	l.end(fmt.Errorf("relock: %q: %w: validity ran out without a successful refresh", l.req.key, ErrLost))
	l.expiry.Stop()
	return true
}

// observe tells the observer, if any, about the lock.
func (l *Lock) observe(kind EventKind, err error) {
	if l.observer == nil {
		return
	}
	now := time.Now()
	l.observer.Observe(Event{Kind: kind, Key: l.req.key, Time: now, Fence: l.fence, Held: now.Sub(l.obtainedAt), TTL: l.req.ttl, Err: err})
}

// lifeCtx returns the lock's life context, ended first if the validity has
// run out, so that no caller sees the lock as valid past ValidUntil even
// before the timer fires.
func (l *Lock) lifeCtx() context.Context {
	l.mu.Lock()
	life, ended := l.lifeLocked()
	l.mu.Unlock()
	if ended {
		l.observe(EventLost, context.Cause(life))
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

// ObtainedAt returns a moment no later than when Redis set the key for us:
// usually when the winning try was sent; for a lock handed over on release,
// or found already ours, a moment derived from the server's answer. The
// key expires no earlier than ObtainedAt().Add(ttl); ValidUntil subtracts
// the drift margin from that.
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
	if l == nil || l.client == nil {
		return invalid("nil lock")
	}
	if ctx == nil {
		return invalid("nil context")
	}
	if l.client.closed.Load() {
		return fmt.Errorf("relock: %s %q: %w", op, l.req.key, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("relock: %s %q: %w", op, l.req.key, err)
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
		l.endCause = fmt.Errorf("relock: %q: %w: validity ran out without a successful refresh", l.req.key, ErrLost)
		cause, ended = l.endCause, true
	}
	l.mu.Unlock()
	if ended {
		l.observe(EventLost, cause)
	}
	return cause
}

// endedError is the error of op on a lock that ended with cause: it
// matches ErrNotHeld and the cause.
func (l *Lock) endedError(op string, cause error) error {
	if errors.Is(cause, ErrNotHeld) {
		return fmt.Errorf("relock: %s %q: %w", op, l.req.key, cause)
	}
	return fmt.Errorf("relock: %s %q: %w: %w", op, l.req.key, ErrNotHeld, cause)
}

// notHeld records that the key was found not ours and returns the error.
func (l *Lock) notHeld(op string) error {
	l.mu.Lock()
	l.settled = true
	l.mu.Unlock()
	err := fmt.Errorf("relock: %s %q: %w", op, l.req.key, ErrNotHeld)
	if l.finish(fmt.Errorf("%w: %w", ErrLost, err)) {
		l.observe(EventLost, l.Err())
	}
	return err
}

// released ends the lock as released, if it had not ended, and emits that.
func (l *Lock) released() {
	l.mu.Lock()
	l.settled = true
	l.mu.Unlock()
	if l.finish(ErrReleased) {
		l.observe(EventReleased, nil)
	}
}

// Release stops the lock's auto-refresh, if any, and deletes the key if it
// still holds our token (or hands it to the next waiter). It returns nil
// once the lock is released, also when called again. When the lock had
// already ended otherwise, it still deletes the key if it holds our token
// (so that others need not wait for it to expire), and returns an error
// matching ErrNotHeld and the lock's Err: ErrLost when its validity ran out
// or a call found it gone or another owner's (whose key is left alone).
//
// ctx bounds the call to Redis: give it a context of its own rather than
// one whose deadline the work may have used up.
func (l *Lock) Release(ctx context.Context) error {
	if err := l.check(ctx, "release"); err != nil {
		return err
	}
	l.stopAutoRefresh(ctx)
	return l.release(ctx)
}

// release deletes the key if it holds our token and ends the lock.
func (l *Lock) release(ctx context.Context) error {
	l.writes.Lock()
	defer l.writes.Unlock()
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
	ok, err := l.client.path.release(ctx, l.req.keys, l.req.token, false)
	if err != nil {
		return opError("release", l.req.key, err)
	}
	if !ok {
		return l.notHeld("release")
	}
	if cause != nil {
		l.mu.Lock()
		l.settled = true
		l.mu.Unlock()
		return l.endedError("release", cause)
	}
	l.released()
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
func (l *Lock) refresh(ctx context.Context, ttl time.Duration) error {
	l.writes.Lock()
	defer l.writes.Unlock()
	if cause := l.endedCause(); cause != nil {
		return l.endedError("refresh", cause)
	}
	if ttl == 0 {
		ttl = l.currentTTL()
	}
	at := time.Now()
	ok, acked, err := l.client.path.refresh(ctx, l.req.keys, l.req.token, ttl, l.req.wait)
	if err != nil {
		l.mayHaveWritten(at, ttl)
		err = opError("refresh", l.req.key, err)
		if !errors.Is(ctx.Err(), context.Canceled) {
			// Not a refresh that Release, Close or the caller called off.
			l.observe(EventRefreshFailed, err)
		}
		return err
	}
	if !ok {
		return l.notHeld("refresh")
	}
	l.rtt.Store(int64(time.Since(at)))
	l.wrote(at, ttl)
	if w := l.req.wait; w != nil && acked < w.n {
		rerr := l.releaseLocked(context.WithoutCancel(ctx))
		return errors.Join(fmt.Errorf("relock: refresh %q: %w: %d of %d within %v; released", l.req.key, ErrTooFewReplicas, acked, w.n, w.timeout), rerr)
	}
	if l.observer != nil {
		l.observer.Observe(Event{Kind: EventRefreshed, Key: l.req.key, Time: time.Now(), Fence: l.fence, TTL: ttl})
	}
	return nil
}

// releaseLocked is release for a caller that holds l.writes.
func (l *Lock) releaseLocked(ctx context.Context) error {
	ok, err := l.client.path.release(ctx, l.req.keys, l.req.token, false)
	switch {
	case err != nil:
		return opError("release", l.req.key, err)
	case !ok:
		return l.notHeld("release")
	}
	l.released()
	return nil
}

// TTL returns the lock's remaining lifetime if the key still holds our
// token, and an error matching ErrNotHeld otherwise, or when the lock has
// already ended. A negative duration means the key has no expiry (someone
// outside relock removed it). When the key has less time left than the
// lock's validity assumed (someone outside relock shortened it), the
// validity shrinks to match.
func (l *Lock) TTL(ctx context.Context) (time.Duration, error) {
	if err := l.check(ctx, "ttl"); err != nil {
		return 0, err
	}
	if cause := l.endedCause(); cause != nil {
		return 0, l.endedError("ttl", cause)
	}
	sent := time.Now()
	d, ok, err := l.client.path.pttl(ctx, l.req.keys, l.req.token)
	if err != nil {
		return 0, opError("ttl", l.req.key, err)
	}
	if !ok {
		return 0, l.notHeld("ttl")
	}
	if d >= 0 {
		// The key expires no earlier than sent+d.
		l.mayHaveWritten(sent, d)
	}
	return d, nil
}
