package relock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// A Lock is one obtained lock: a key that holds our random token until it
// expires or is released. Its methods are safe for concurrent use.
//
// A Lock knows how long it is valid: its TTL counted from the moment the
// winning try was sent, less a drift margin (TTL/100 + 2ms) for clock rate
// differences, and extended by each successful Refresh. Done closes, and
// Err tells why, when the lock ends: released, found lost by a refresh, or
// past its validity without a successful refresh, whether or not Redis
// answers.
type Lock struct {
	client     *Client
	req        obtainReq // key, token, ttl and what the obtain asked for
	fence      int64
	obtainedAt time.Time
	observer   Observer // nil: no events

	mu sync.Mutex
	// life ends when the lock does; its cause says why. It and the expiry
	// timer are made on first use (Done, Err, auto-refresh): until then
	// endCause records an end.
	life       context.Context
	end        context.CancelCauseFunc
	endCause   error
	settled    bool               // no longer ours to act on: released, or found not ours
	validUntil time.Time          // when the lock stops being safe to rely on
	expiry     *time.Timer        // ends life at validUntil
	stopAuto   context.CancelFunc // stops the refresher, if any
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
	l.validUntil = at.Add(req.ttl - drift(req.ttl))
	if st.autoRefresh {
		if !c.startAutoRefresh(l) {
			l.finish(ErrClosed)
			c.cleanUp(req, false, nil)
			return nil, fmt.Errorf("relock: obtain %q: %w", req.key, ErrClosed)
		}
	}
	return l, nil
}

// extendLocked moves the validity to at+ttl-drift, if that is later. l.mu
// must be held.
func (l *Lock) extendLocked(at time.Time, ttl time.Duration) {
	if until := at.Add(ttl - drift(ttl)); until.After(l.validUntil) {
		l.validUntil = until
		if l.expiry != nil {
			l.expiry.Reset(time.Until(until))
		}
	}
}

// lifeLocked returns the lock's life context, making it and the expiry
// timer on first use. l.mu must be held.
func (l *Lock) lifeLocked() context.Context {
	if l.life != nil {
		return l.life
	}
	l.life, l.end = context.WithCancelCause(context.Background())
	if l.endCause != nil {
		l.end(l.endCause)
		return l.life
	}
	left := time.Until(l.validUntil)
	if left <= 0 {
		l.expireLocked()
	}
	l.expiry = time.AfterFunc(max(left, 0), l.expire)
	return l.life
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
	life := l.lifeLocked()
	ended := l.expireLocked()
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
	l.mu.Lock()
	settled := l.settled
	l.mu.Unlock()
	if settled {
		return fmt.Errorf("relock: %s %q: %w", op, l.req.key, ErrNotHeld)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("relock: %s %q: %w", op, l.req.key, err)
	}
	return nil
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

// Release stops the lock's auto-refresh, if any, and deletes the key if it
// still holds our token. It returns ErrNotHeld when the lock had expired or
// belongs to another owner (whose key is left alone), and for a lock
// already released.
func (l *Lock) Release(ctx context.Context) error {
	if err := l.check(ctx, "release"); err != nil {
		return err
	}
	l.stopAutoRefresh()
	return l.release(ctx)
}

// release deletes the key if it holds our token and ends the lock.
func (l *Lock) release(ctx context.Context) error {
	ok, err := l.client.path.release(ctx, l.req.keys, l.req.token, false)
	if err != nil {
		return opError("release", l.req.key, err)
	}
	if !ok {
		return l.notHeld("release")
	}
	l.mu.Lock()
	l.settled = true
	l.mu.Unlock()
	l.finish(ErrReleased)
	l.observe(EventReleased, nil)
	return nil
}

// Refresh sets the lock's remaining lifetime to ttl if the key still holds
// our token, extending its validity, and returns ErrNotHeld otherwise (the
// lock is then lost). With WithReplicas, it also waits for the replicas,
// and releases the lock when too few acknowledge.
func (l *Lock) Refresh(ctx context.Context, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	if err := l.check(ctx, "refresh"); err != nil {
		return err
	}
	return l.refresh(ctx, ttl)
}

func (l *Lock) refresh(ctx context.Context, ttl time.Duration) error {
	at := time.Now()
	ok, acked, err := l.client.path.refresh(ctx, l.req.keys, l.req.token, ttl, l.req.wait)
	if err != nil {
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
	if w := l.req.wait; w != nil && acked < w.n {
		_ = l.release(context.WithoutCancel(ctx))
		return fmt.Errorf("relock: refresh %q: %w: %d of %d within %v; released", l.req.key, ErrTooFewReplicas, acked, w.n, w.timeout)
	}
	l.mu.Lock()
	if !l.endedLocked() {
		l.extendLocked(at, ttl)
	}
	l.mu.Unlock()
	if l.observer != nil {
		l.observer.Observe(Event{Kind: EventRefreshed, Key: l.req.key, Time: time.Now(), Fence: l.fence, TTL: ttl})
	}
	return nil
}

// TTL returns the lock's remaining lifetime if the key still holds our
// token, and ErrNotHeld otherwise. A negative duration means the key has
// no expiry (someone outside relock removed it).
func (l *Lock) TTL(ctx context.Context) (time.Duration, error) {
	if err := l.check(ctx, "ttl"); err != nil {
		return 0, err
	}
	d, ok, err := l.client.path.pttl(ctx, l.req.keys, l.req.token)
	if err != nil {
		return 0, opError("ttl", l.req.key, err)
	}
	if !ok {
		return 0, l.notHeld("ttl")
	}
	return d, nil
}
