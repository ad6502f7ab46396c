package driver

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// wrongTypeInScript is how an error raised by redis.call inside a script
// quotes a WRONGTYPE reply when the server wraps it in a script error of
// its own: "ERR Error running script (call to f_<sha>): @user_script:1:
// WRONGTYPE Operation against a key ..." (Redis 6 and older), "ERR Error
// compiling script (new function): :1: WRONGTYPE Operation against a key
// ..." (miniredis). Clients may drop the leading "ERR ".
const wrongTypeInScript = ": WRONGTYPE Operation against a key"

// scriptRefused is how Redis 7 reports an ACL refusal of a command that a
// script calls: "ERR The user executing the script can't access at least
// one of the keys mentioned in the command ...", "... can't publish to the
// channel ...", "... can't run this command or subcommand ...".
const scriptRefused = "The user executing the script can't "

// ReplyKind returns the sentinel that an error reply whose text is msg must
// match, and so classifies every refusal once for all drivers:
//
//   - [ErrNoScript]: a reply that starts with "NOSCRIPT".
//   - [ErrWrongType]: one that starts with "WRONGTYPE" (a command, or a
//     script on Redis 7) or that quotes a WRONGTYPE reply raised inside a
//     script (": WRONGTYPE Operation against a key", as Redis 6 and
//     miniredis report it). Permanent.
//   - [ErrNoPermission]: one that starts with "NOPERM", "NOAUTH" or
//     "WRONGPASS", or that reports an ACL refusal inside a script ("The
//     user executing the script can't ..."). Permanent.
//   - [errors.ErrUnsupported]: an unknown command ("ERR unknown command
//     ..."): the server does not offer a command relock needs. Permanent.
//   - [ErrServerRefused]: one whose first word is BUSY, LOADING, TRYAGAIN,
//     MASTERDOWN, CLUSTERDOWN, OOM, READONLY, MISCONF or NOREPLICAS, or
//     "ERR max number of clients reached". Transient.
//   - nil for every other reply.
//
// msg is the reply's text, with or without the leading "ERR " some clients
// drop. Only the start of the text and the WRONGTYPE quotation count: a
// script error that merely mentions "script" or "NOSCRIPT" in its message
// is not ErrNoScript.
func ReplyKind(msg string) error {
	switch {
	case strings.HasPrefix(msg, "NOSCRIPT"):
		return ErrNoScript
	case strings.HasPrefix(msg, "WRONGTYPE"), strings.Contains(msg, wrongTypeInScript):
		return ErrWrongType
	case firstWord(msg, "NOPERM"), firstWord(msg, "NOAUTH"), firstWord(msg, "WRONGPASS"), strings.Contains(msg, scriptRefused):
		return ErrNoPermission
	}
	rest := strings.TrimPrefix(msg, "ERR ")
	switch {
	case strings.HasPrefix(rest, "unknown command"):
		return errors.ErrUnsupported
	case strings.HasPrefix(rest, "max number of clients reached"):
		return ErrServerRefused
	}
	for _, code := range refusedCodes {
		if firstWord(msg, code) {
			return ErrServerRefused
		}
	}
	return nil
}

// firstWord reports whether msg's first word is code.
func firstWord(msg, code string) bool {
	return strings.HasPrefix(msg, code) && (len(msg) == len(code) || msg[len(code)] == ' ')
}

// refusedCodes are the error codes by which a server refuses a command for
// now: see ErrServerRefused.
var refusedCodes = [...]string{"BUSY", "LOADING", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN", "OOM", "READONLY", "MISCONF", "NOREPLICAS"}

// ServerError returns an error for an error reply whose text is msg: its
// Error() is msg, and errors.Is matches it to the sentinel ReplyKind(msg)
// names, if any. It suits a client that reports error replies as plain
// text; for a client with an error type of its own, see WrapServerError.
func ServerError(msg string) error {
	return &serverError{msg: msg, kind: ReplyKind(msg)}
}

// WrapServerError makes reply, a client library's error value for an error
// reply from the server, match the sentinel that ReplyKind(reply.Error())
// names. The result keeps reply's text, and errors.As still finds reply's
// own type through it. It returns reply unchanged when no sentinel applies
// or reply already matches it, and nil for nil. Call it only for error
// replies: network errors and context errors must pass through untouched.
func WrapServerError(reply error) error {
	if reply == nil {
		return nil
	}
	kind := ReplyKind(reply.Error())
	if kind == nil || errors.Is(reply, kind) {
		return reply
	}
	return &serverError{msg: reply.Error(), kind: kind, reply: reply}
}

// serverError is an error reply that may match a sentinel.
type serverError struct {
	msg   string
	kind  error // a sentinel ReplyKind names, or nil
	reply error // the client's own error, or nil
}

func (e *serverError) Error() string { return e.msg }

func (e *serverError) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.reply != nil {
		errs = append(errs, e.reply)
	}
	return errs
}

// WaitTimeout checks the arguments of a WAIT that follows a script call
// (see [ReplicaWaiter]) and returns WAIT's timeout argument in whole
// milliseconds. A positive timeout is rounded up to the next whole
// millisecond, so it is never sent as 0, which would make WAIT block
// forever: 1ns and 1ms both give 1, 1.5ms gives 2. A negative replicas or a
// timeout that is not positive is an error, and the caller must send
// nothing. The error's text names the argument ("replicas must not be
// negative", "timeout must be positive").
func WaitTimeout(replicas int, timeout time.Duration) (ms int64, err error) {
	switch {
	case replicas < 0:
		return 0, fmt.Errorf("relock/driver: WAIT for %d replicas: replicas must not be negative", replicas)
	case timeout <= 0:
		return 0, fmt.Errorf("relock/driver: WAIT timeout %v: timeout must be positive", timeout)
	}
	ms = int64(timeout / time.Millisecond)
	if timeout%time.Millisecond != 0 {
		ms++
	}
	return ms, nil
}
