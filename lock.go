package relock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/relock-go/relock/driver"
)

// A Lock is one obtained lock: a key that holds our random token until it
// expires or is released. Its methods are safe for concurrent use. A Lock
// whose Release succeeded, or that was found not held, stays not held.
type Lock struct {
	client     *Client
	key        string
	token      string
	obtainedAt time.Time

	mu       sync.Mutex
	released bool
}

// Key returns the lock's Redis key.
func (l *Lock) Key() string { return l.key }

// Token returns the random value that marks this acquisition as ours: 32
// hexadecimal digits, never reused.
func (l *Lock) Token() string { return l.token }

// ObtainedAt returns when the try that obtained the lock was sent. The
// lock's lifetime counts from no earlier than this moment, so
// ObtainedAt().Add(ttl) bounds, from below, when it may expire.
func (l *Lock) ObtainedAt() time.Time { return l.obtainedAt }

func (l *Lock) check(ctx context.Context, op string) error {
	if l == nil || l.client == nil {
		return invalid("nil lock")
	}
	if ctx == nil {
		return invalid("nil context")
	}
	if l.client.closed.Load() {
		return ErrClosed
	}
	l.mu.Lock()
	released := l.released
	l.mu.Unlock()
	if released {
		return fmt.Errorf("relock: %s %q: %w", op, l.key, ErrNotHeld)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("relock: %s %q: %w", op, l.key, err)
	}
	return nil
}

func (l *Lock) markReleased() {
	l.mu.Lock()
	l.released = true
	l.mu.Unlock()
}

// Release deletes the lock's key if it still holds our token. It returns
// ErrNotHeld when the lock had expired or belongs to another owner (whose
// key is left alone) and for a lock already released.
func (l *Lock) Release(ctx context.Context) error {
	if err := l.check(ctx, "release"); err != nil {
		return err
	}
	ok, err := l.client.path.release(ctx, l.key, l.token)
	if err != nil {
		return opError("release", l.key, err)
	}
	l.markReleased()
	if !ok {
		return fmt.Errorf("relock: release %q: %w", l.key, ErrNotHeld)
	}
	return nil
}

// Refresh sets the lock's remaining lifetime to ttl if the key still holds
// our token, and returns ErrNotHeld otherwise.
func (l *Lock) Refresh(ctx context.Context, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	if err := l.check(ctx, "refresh"); err != nil {
		return err
	}
	ok, err := l.client.path.refresh(ctx, l.key, l.token, ttl)
	if err != nil {
		return opError("refresh", l.key, err)
	}
	if !ok {
		l.markReleased()
		return fmt.Errorf("relock: refresh %q: %w", l.key, ErrNotHeld)
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
	d, ok, err := l.client.path.pttl(ctx, l.key, l.token)
	if err != nil {
		return 0, opError("ttl", l.key, err)
	}
	if !ok {
		l.markReleased()
		return 0, fmt.Errorf("relock: ttl %q: %w", l.key, ErrNotHeld)
	}
	return d, nil
}

func errorsIsWrongType(err error) bool { return errors.Is(err, driver.ErrWrongType) }
