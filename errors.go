package relock

import (
	"errors"
	"fmt"

	"github.com/relock-go/relock/driver"
)

// Errors returned by relock, checked with errors.Is. Errors are wrapped with
// the operation and key, so compare with errors.Is, never with ==.
var (
	// ErrNotObtained reports that a lock could not be obtained because
	// another owner holds it and the retry strategy or the wait budget ran
	// out. When the caller's context ended the wait instead, the error
	// matches both ErrNotObtained and the context's error
	// (context.Canceled or context.DeadlineExceeded), so "I gave up" can be
	// told from "it is taken".
	ErrNotObtained = errors.New("relock: lock not obtained")

	// ErrNotHeld reports that Release, Refresh, TTL or Attach found the
	// lock no longer ours: it expired, was released, or another owner took
	// it (on a quorum: fewer than a majority of masters still held it).
	// Nothing of another owner's was changed in Redis.
	ErrNotHeld = errors.New("relock: lock not held")

	// ErrInvalidArgument reports bad input: an empty, over-long or reserved
	// key, a TTL out of range, a nil client, lock, context or driver, a
	// negative wait, over-long metadata, a malformed token, the same
	// connection twice in a quorum, a bad DSN. Nothing was sent.
	ErrInvalidArgument = errors.New("relock: invalid argument")

	// ErrWrongType reports that the lock's key holds a Redis value that is
	// not a string (a hash, a list, ...), so it cannot be a lock. Obtain
	// returns it at once instead of waiting for ever.
	ErrWrongType = errors.New("relock: key holds a value that is not a string")

	// ErrClosed reports a call on a Client, or on a Lock of a Client, after
	// Client.Close.
	ErrClosed = errors.New("relock: client is closed")

	// ErrLost is the reason Lock.Err gives, and Done signals, when a lock
	// stopped being ours before Release: a refresh found the key gone or
	// another owner's (the error also matches ErrNotHeld), or the lock's
	// validity ran out without a successful refresh.
	ErrLost = errors.New("relock: lock lost")

	// ErrReleased is what Lock.Err returns after Release.
	ErrReleased = errors.New("relock: lock released")

	// ErrTooFewReplicas reports that fewer replicas than WithReplicas asked
	// for acknowledged the lock's write in time. The lock was released.
	ErrTooFewReplicas = errors.New("relock: too few replicas acknowledged the lock")

	// ErrUnavailable reports that Redis could not be used: no try got an
	// answer (no reply before the deadline, connection refused or reset, a
	// TLS mismatch), or the server refused the commands for now (BUSY,
	// LOADING, TRYAGAIN, MASTERDOWN, CLUSTERDOWN, OOM, READONLY). Unlike
	// ErrNotObtained it says nothing about another holder: none was seen.
	// The error also matches the context's error, when the context ended
	// the call, and the last underlying error.
	ErrUnavailable = errors.New("relock: redis unavailable")

	// ErrNoPermission reports that the Redis user may not run a command
	// relock needs or touch one of the lock's keys or channels (a NOPERM
	// reply: see the README's list of the ACL permissions relock needs).
	// Trying again does not help. A lock is never left behind holding our
	// token because of it.
	ErrNoPermission = errors.New("relock: no permission")

	// ErrUnsupported reports a driver that implements neither
	// driver.Scripter nor driver.Watcher, so no owner-checked release is
	// possible, or an option the driver cannot serve (WithReplicas without
	// driver.ReplicaWaiter, WithFencing on a quorum); nothing was sent.
	ErrUnsupported = errors.New("relock: not supported by the driver")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// opError wraps err with the operation and key. A driver's WRONGTYPE error
// also matches ErrWrongType, and its errors.ErrUnsupported ErrUnsupported.
func opError(op, key string, err error) error {
	if errors.Is(err, driver.ErrWrongType) && !errors.Is(err, ErrWrongType) {
		return fmt.Errorf("relock: %s %q: %w: %w", op, key, ErrWrongType, err)
	}
	if errors.Is(err, errors.ErrUnsupported) && !errors.Is(err, ErrUnsupported) {
		return fmt.Errorf("relock: %s %q: %w: %w", op, key, ErrUnsupported, err)
	}
	return fmt.Errorf("relock: %s %q: %w", op, key, err)
}
