package relock

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// startAutoRefresh starts l's refresher unless the Client is closed.
func (c *Client) startAutoRefresh(l *Lock) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return false
	}
	ctx, cancel := context.WithCancel(c.life)
	rctx, cut := context.WithCancel(c.life)
	l.mu.Lock()
	l.stopAuto, l.cutAuto, l.autoDone = cancel, cut, make(chan struct{})
	l.mu.Unlock()
	c.refreshers.Add(1)
	go l.autoRefresh(ctx, rctx, l.autoDone)
	return true
}

// stopAutoRefresh stops the refresher, if any, and waits until it is gone:
// no refresh runs after it returns. A refresh on the wire is let finish
// for up to two of the lock's last round trips (refreshGrace) while ctx
// lasts, then cut: cutting it at once would cost its connection on
// go-redis and redigo, and the release that follows would wait for a new
// one, several round trips on a slow link, long enough for the key to
// expire instead of being handed over; a refresh stuck longer is cut.
func (l *Lock) stopAutoRefresh(ctx context.Context) {
	l.mu.Lock()
	stop, cut, done := l.stopAuto, l.cutAuto, l.autoDone
	l.mu.Unlock()
	if stop == nil {
		return
	}
	stop()
	grace := time.NewTimer(refreshGrace(time.Duration(l.rtt.Load())))
	defer grace.Stop()
	select {
	case <-done:
	case <-ctx.Done():
	case <-grace.C:
	}
	cut()
	<-done
}

// haltAutoRefresh stops the refresher, if any, from sending another
// refresh, and returns the function that waits until it is gone: it lets a
// refresh on the wire finish as stopAutoRefresh does, then cuts it.
func (l *Lock) haltAutoRefresh() func(context.Context) {
	l.mu.Lock()
	stop := l.stopAuto
	l.mu.Unlock()
	if stop == nil {
		return func(context.Context) {}
	}
	stop()
	return l.stopAutoRefresh
}

// refreshGrace is how long Release lets a refresh on the wire finish,
// given the lock's last round trip.
func refreshGrace(rtt time.Duration) time.Duration {
	return min(2*rtt+time.Millisecond, time.Second)
}

// autoRefresh refreshes l to its TTL (the obtain's, or the last Refresh's)
// about every third of it (see nextRefresh) until ctx ends (Release or
// Client.Close) or the lock ends. A refresh that fails for a reason other
// than loss is tried again sooner; each try is bounded by the lock's
// validity, whose timer signals the loss if no try gets through, and by
// refreshCtx (Client.Close, or a Release whose own context ended).
func (l *Lock) autoRefresh(ctx, refreshCtx context.Context, done chan struct{}) {
	defer l.client.refreshers.Done()
	defer close(done)
	if l.ready != nil {
		<-l.ready // EventObtained first
	}
	if l.confirming != nil {
		// A hand-over given before its confirmation: the refreshes
		// follow from the validity that the confirmation sets.
		select {
		case <-l.confirming:
		case <-ctx.Done():
			return
		}
	}
	life := l.lifeCtx()
	t := time.NewTimer(l.nextRefresh())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if l.client.life.Err() != nil {
				// Client.Close: give the lock back rather than leave it
				// to block others until its TTL (bounded, best effort).
				rctx, cancel := context.WithTimeout(context.Background(), min(l.req.ttl, cleanupAttempt))
				cctx := l.begin(EventReleasing, l.req.ttl)
				released, err := l.req.path.release(rctx, l.req.keys, l.req.token, false)
				cancel()
				if cause := l.because(ErrClosed); l.finish(cause) {
					if released && err == nil {
						l.observe(cctx, EventReleased, nil)
					} else {
						l.observe(cctx, EventLost, cause)
					}
				}
				switch {
				case err != nil:
					err = opError("release", l.req.key, err)
				case !released:
					err = fmt.Errorf("relock: release %q: %w", l.req.key, ErrNotHeld)
				}
				l.done(cctx, err)
			}
			return
		case <-life.Done():
			return
		case <-t.C:
			if ctx.Err() != nil {
				// Stopped too (Release, Close): select picks at random
				// among ready cases, and a refresh sent now would hold up
				// the release behind it.
				continue
			}
		}
		rctx, cancel := context.WithDeadline(refreshCtx, l.ValidUntil())
		err := l.refresh(rctx, 0) // to the TTL of the last write
		cancel()
		wait := l.nextRefresh()
		switch {
		case errors.Is(err, ErrNotHeld), errors.Is(err, ErrTooFewReplicas):
			return // the refresh ended the lock
		case err != nil:
			// Redis failed or did not answer in time: try again soon, while
			// the validity lasts; its timer ends the lock otherwise.
			wait = max(wait/4, time.Millisecond)
		}
		t.Reset(wait)
	}
}

// nextRefresh is how long auto-refresh waits before its next refresh:
// until a third of the TTL after the last write was sent (two thirds of
// the validity left), and no longer than a third of the validity left.
// On a fast network that is the TTL/3 rhythm; on a slow one it counts the
// round trip of the last write, and of a lock that arrived late (a
// hand-over crossing a slow link) with little validity left, so that the
// refresh reaches Redis before the key expires rather than a round trip
// after: refreshing every TTL/3 after the reply, with round trips of 300
// ms against a 400 ms TTL, lost locks.
func (l *Lock) nextRefresh() time.Duration {
	l.mu.Lock()
	ttl, left := l.ttl, time.Until(l.validUntil)
	l.mu.Unlock()
	return max(min(left-2*(ttl-drift(ttl))/3, left/3), 0)
}

// currentTTL is the TTL of the lock's last write: what auto-refresh renews
// it to.
func (l *Lock) currentTTL() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ttl
}
