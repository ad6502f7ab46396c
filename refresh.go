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
	l.mu.Lock()
	l.stopAuto, l.autoDone = cancel, make(chan struct{})
	l.mu.Unlock()
	c.refreshers.Add(1)
	go l.autoRefresh(ctx, l.autoDone)
	return true
}

// stopAutoRefresh stops the refresher, if any, and waits until it is gone:
// no refresh runs after it returns.
func (l *Lock) stopAutoRefresh() {
	l.mu.Lock()
	stop, done := l.stopAuto, l.autoDone
	l.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// autoRefresh refreshes l to its TTL (the obtain's, or the last Refresh's)
// every third of it until ctx ends (Release or Client.Close) or the lock
// ends. A refresh that fails for a reason other than loss is tried again
// sooner; each try is bounded by the lock's validity, whose timer signals
// the loss if no try gets through.
func (l *Lock) autoRefresh(ctx context.Context, done chan struct{}) {
	defer l.client.refreshers.Done()
	defer close(done)
	if l.ready != nil {
		<-l.ready // EventObtained first
	}
	life := l.lifeCtx()
	t := time.NewTimer(l.currentTTL() / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if l.client.life.Err() != nil {
				// Client.Close: give the lock back rather than leave it
				// to block others until its TTL (bounded, best effort).
				rctx, cancel := context.WithTimeout(context.Background(), min(l.req.ttl, cleanupAttempt))
				cctx := l.begin(EventReleasing, l.req.ttl)
				released, err := l.client.path.release(rctx, l.req.keys, l.req.token, false)
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
		}
		rctx, cancel := context.WithDeadline(ctx, l.ValidUntil())
		err := l.refresh(rctx, 0) // to the TTL of the last write
		cancel()
		wait := l.currentTTL() / 3
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

// currentTTL is the TTL of the lock's last write: what auto-refresh renews
// it to.
func (l *Lock) currentTTL() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ttl
}
