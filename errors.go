package relock

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/relock-go/relock/driver"
)

// Errors returned by relock, checked with errors.Is. Errors are wrapped with
// the operation and key, so compare with errors.Is, never with ==. Their
// own texts do not start with "relock:": every error relock returns does,
// once, as in `relock: obtain "k": lock not obtained (held by "host=web-1",
// 2.1s left)`.
var (
	// ErrNotObtained reports that a lock could not be obtained because
	// another owner holds it: at least one try got an answer showing
	// another holder, and then the retry strategy or the wait budget ran
	// out. When the caller's context ended the wait instead, the error
	// matches both ErrNotObtained and the context's error
	// (context.Canceled or context.DeadlineExceeded), so "I gave up" can be
	// told from "it is taken". A call that never got such an answer
	// (Redis down or refusing) fails with ErrUnavailable instead. The one
	// exception: a context cancelled (context.Canceled), or already ended,
	// before any try failed for want of Redis gives ErrNotObtained and the
	// context's error: the caller gave up, and nothing said Redis was down.
	ErrNotObtained = errors.New("lock not obtained")

	// ErrNotHeld reports that Release, Refresh, TTL or Attach found the
	// lock no longer ours: it expired, was released, or another owner took
	// it (on a quorum: fewer than a majority of masters still held it).
	// Nothing of another owner's was changed in Redis.
	ErrNotHeld = errors.New("lock not held")

	// ErrInvalidArgument reports bad input: an empty, over-long or reserved
	// key, a TTL out of range, a nil client, lock, context or driver, a
	// negative wait, over-long metadata, a malformed token, the same
	// connection twice in a quorum, a bad DSN. Nothing was sent.
	ErrInvalidArgument = errors.New("invalid argument")

	// ErrWrongType reports that the lock's key holds a Redis value that is
	// not a string (a hash, a list, ...), so it cannot be a lock. Obtain
	// returns it at once instead of waiting for ever.
	ErrWrongType = errors.New("key holds a value that is not a string")

	// ErrClosed reports a call on a Client, or on a Lock of a Client, after
	// Client.Close.
	ErrClosed = errors.New("client is closed")

	// ErrLost is the reason Lock.Err gives, and Done signals, when a lock
	// stopped being ours before Release: a refresh found the key gone or
	// another owner's (the error also matches ErrNotHeld), or the lock's
	// validity ran out without a successful refresh.
	ErrLost = errors.New("lock lost")

	// ErrReleased is what Lock.Err returns after Release.
	ErrReleased = errors.New("lock released")

	// ErrTooFewReplicas reports that fewer replicas than WithReplicas asked
	// for acknowledged the lock's write in time. The lock was released.
	ErrTooFewReplicas = errors.New("too few replicas acknowledged the lock")

	// ErrUnavailable reports that Redis could not be used: no try got an
	// answer (no reply before the deadline, connection refused or reset, a
	// TLS mismatch), or the server refused the commands for now (BUSY,
	// LOADING, TRYAGAIN, MASTERDOWN, CLUSTERDOWN, OOM, READONLY, MISCONF,
	// NOREPLICAS, max clients reached: driver.ErrServerRefused). Unlike
	// ErrNotObtained it says nothing about another holder: none was seen.
	//
	// Obtain retries such failures, backing off, as its retry strategy,
	// wait budget and context allow, and returns ErrUnavailable only when
	// no try found the lock held; the error then also matches the
	// context's error, when the context ended the call, and the last
	// underlying error (for errors.Is and errors.As). Release, Refresh,
	// TTL, Inspect and Attach return it, wrapping the driver's error, for
	// the same failures.
	ErrUnavailable = errors.New("redis unavailable")

	// ErrNoPermission reports that the Redis user may not run a command
	// relock needs or touch one of the lock's keys or channels (a NOPERM
	// reply: docs/permissions.md lists the ACL permissions relock needs),
	// or could not authenticate (NOAUTH, WRONGPASS). Trying again does not
	// help: Obtain fails at once. A lock is never left behind holding our
	// token because of it. The error also matches driver.ErrNoPermission
	// and keeps the server's text.
	ErrNoPermission = errors.New("no permission")

	// ErrUnsupported reports a driver that implements neither
	// driver.Scripter nor driver.Watcher, so no owner-checked release is
	// possible, or an option the driver cannot serve (WithReplicas without
	// driver.ReplicaWaiter, WithFencing on a quorum); nothing was sent.
	// Also a command the server does not know ("ERR unknown command"):
	// Obtain then fails at once.
	ErrUnsupported = errors.New("not supported by the driver")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("relock: %w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// opError wraps err with the operation and key, and makes it match the
// sentinel that classify finds for it: ErrWrongType for a driver's
// WRONGTYPE error, ErrUnsupported for errors.ErrUnsupported (an unknown
// command included), ErrNoPermission for NOPERM, ErrUnavailable for a
// refusal for now or a failure to get an answer.
func opError(op, key string, err error) error {
	if s := classify(err).sentinel; s != nil && !errors.Is(err, s) {
		return errorf("relock: %s %q: %w: %w", op, key, s, err)
	}
	return errorf("relock: %s %q: %w", op, key, err)
}

// failure is what an error from a driver says about Redis.
type failure struct {
	// sentinel is the relock error it matches, or nil when it is none of
	// the kinds below (an error reply relock does not know, a closed
	// client, a cancelled context).
	sentinel error
	// transient: trying again may help (a refusal for now, no answer).
	// Obtain retries it within its wait budget and context.
	transient bool
	// written: the failed call may have changed Redis (its outcome is
	// unknown). A refusal, or a call the driver could not serve, wrote
	// nothing.
	written bool
}

// permanent reports a failure that trying again does not get past.
func (f failure) permanent() bool { return f.sentinel != nil && !f.transient }

// classify tells what a driver's error says, by the sentinels the driver
// contract names (driver.ReplyKind's classification) and the standard
// library's network, TLS and timeout errors:
//
//	driver.ErrWrongType           ErrWrongType     permanent
//	errors.ErrUnsupported         ErrUnsupported   permanent (an unknown command)
//	driver.ErrNoPermission        ErrNoPermission  permanent
//	driver.ErrServerRefused       ErrUnavailable   transient (BUSY, OOM, READONLY, ...)
//	no answer                     ErrUnavailable   transient (net.Error, io.EOF, TLS, deadline)
//	anything else                 none             permanent, outcome unknown
func classify(err error) failure {
	switch {
	case errors.Is(err, driver.ErrWrongType):
		return failure{sentinel: ErrWrongType}
	case errors.Is(err, errors.ErrUnsupported):
		return failure{sentinel: ErrUnsupported}
	case errors.Is(err, driver.ErrNoPermission):
		return failure{sentinel: ErrNoPermission}
	case errors.Is(err, driver.ErrServerRefused):
		return failure{sentinel: ErrUnavailable, transient: true}
	case noAnswer(err):
		return failure{sentinel: ErrUnavailable, transient: true, written: true}
	}
	return failure{written: true}
}

// noAnswer reports whether err says that Redis did not answer: a network
// error (connection refused or reset, a timeout), a connection closed
// mid-reply, a failed TLS handshake or certificate check, or a deadline
// that passed while the call waited.
func noAnswer(err error) bool {
	var (
		netErr    net.Error
		recordErr tls.RecordHeaderError
		alertErr  tls.AlertError
		certErr   *tls.CertificateVerificationError
		authErr   x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invErr    x509.CertificateInvalidError
	)
	return errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.As(err, &netErr) ||
		errors.As(err, &recordErr) || errors.As(err, &alertErr) || errors.As(err, &certErr) ||
		errors.As(err, &authErr) || errors.As(err, &hostErr) || errors.As(err, &invErr)
}

// errorf is fmt.Errorf for relock's own messages, which start with
// "relock: ": a wrapped error of relock's (a sentinel, or a message built
// here) says "relock: " again, so errorf drops each later ": relock: " to
// ": ". The text reads `relock: obtain "k": lock not obtained`, not
// `relock: obtain "k": relock: lock not obtained`; errors.Is and errors.As
// see the same chain as fmt.Errorf's.
func errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	msg := err.Error()
	if short := strings.ReplaceAll(msg, ": relock: ", ": "); short != msg {
		return &relockError{msg: short, err: err}
	}
	return err
}

// relockError is an error whose text errorf shortened.
type relockError struct {
	msg string
	err error
}

func (e *relockError) Error() string { return e.msg }
func (e *relockError) Unwrap() error { return e.err }
