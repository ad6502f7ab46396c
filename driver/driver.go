// Package driver defines the contract between relock and a Redis backend.
//
// The relock package holds the lock algorithm once; it talks to Redis only
// through the interfaces here, in the manner of database/sql/driver. Most users
// never touch this package: they pick an adapter (adapters/goredis,
// adapters/redigo, adapters/rueidis). Authors of custom backends implement it
// and prove their work with the conformance package.
//
// # What a driver must implement
//
// Every driver implements [Conn]: SET NX PX, GET and Close. It must also
// implement at least one of the two ways to change a key only if it still
// holds a given value:
//
//   - [Scripter]: EVAL and EVALSHA. relock then acquires, releases, refreshes
//     and reads the TTL of a lock with one Lua script call each.
//   - [Watcher]: WATCH, commands and MULTI/EXEC on one pinned connection.
//     relock then releases with WATCH/GET/MULTI/DEL/EXEC, retried when EXEC
//     aborts, and acquires with SET NX PX followed by GET.
//
// A driver should implement Scripter where its backend runs Lua: it saves a
// round trip in every contended acquire and every release, and it is what
// the waiter queue, hand-over on release and fencing are built on. A driver
// with both lets relock use scripts; the conformance suite checks that both
// paths give the same answers. relock.New rejects a Conn with neither.
//
// Two more capabilities are optional, each with a fallback:
//
//   - [Subscriber]: pub/sub. With Scripter, relock wakes a waiter the moment
//     a release hands the lock to it. Without, waiters poll as the retry
//     strategy says.
//   - [ReplicaWaiter]: a script call followed by WAIT on the same
//     connection, for relock.WithReplicas. Without, that option fails with
//     relock.ErrUnsupported.
//
// # Concurrency
//
// A Conn, despite its name, stands for a whole client (usually a pool): it
// must be safe for concurrent use by many goroutines, and every method call
// may use any connection of the pool, except the calls made through a [Tx],
// which all run on the one connection that Watch pinned.
//
// # Replies
//
// A missing key is never an error: Get reports it with ok == false. Replies
// of Eval, EvalSha and Tx.Exec map from RESP to Go values as follows, whatever
// the client library returns natively:
//
//	nil bulk string, nil array, Lua false -> nil
//	integer                               -> int64
//	bulk string, simple status ("OK")     -> string
//	array                                 -> []any of these values
//
// # Errors
//
// A driver must translate these server errors into the sentinels below, so
// that errors.Is finds them (wrapping is fine and keeps the server's text):
//
//   - a NOSCRIPT reply to EvalSha: [ErrNoScript] (relock then calls Eval);
//   - a WRONGTYPE reply (from any call, including a script that touched a
//     key of another type): [ErrWrongType];
//   - a NOPERM reply (also NOAUTH and WRONGPASS): [ErrNoPermission];
//   - an unknown command: [errors.ErrUnsupported];
//   - a refusal for now (BUSY, LOADING, TRYAGAIN, MASTERDOWN, CLUSTERDOWN,
//     OOM, READONLY, MISCONF, NOREPLICAS, "max number of clients
//     reached"): [ErrServerRefused].
//
// A transaction whose EXEC was aborted because a watched key changed
// returns [ErrTxAborted]. Every other error (network, timeouts, a TLS
// handshake, a cancelled context) is returned as the client reports it,
// wrapped or not: relock recognises a net.Error, io.EOF,
// io.ErrUnexpectedEOF, a TLS or certificate error and
// context.DeadlineExceeded as "Redis did not answer"; the context's error
// should stay visible through errors.Is. After Close, calls should fail
// with an error rather than panic.
//
// relock turns these into its own sentinels: ErrNoPermission, ErrWrongType
// and ErrUnsupported make Obtain fail at once; ErrServerRefused and a
// failure to get an answer make it retry within its wait budget and
// context, and, when no try ever found the lock held, fail with
// relock.ErrUnavailable. Any other error reply ends Obtain at once, as
// the server reported it.
//
// Helpers keep this the same in every driver, so that an author writes
// only the translation of their client's types: [ReplyKind] tells, from an
// error reply's text, which sentinel it must match; [WrapServerError] makes
// a client's reply error match it (keeping the client's type for
// errors.As), and [ServerError] builds one from the text alone.
// [ConvertReply] maps the Go values a client returns for a reply (RESP2 or
// RESP3: doubles, booleans, maps, byte slices, other integer types) to the
// shapes above.
//
// An adapter's own errors (a nil client, a reply of an unexpected shape, a
// call after Close) start with "relock/" and the adapter's package name,
// as this package's start with "relock/driver:": "relock/goredis: nil
// client". relock's own errors start with "relock:". Errors from the
// client library and the server keep their own text.
// [WaitTimeout] checks the arguments of a replica WAIT and gives its
// timeout in whole milliseconds, rounded up so it is never 0.
//
// [ParseURL] (or [URL.Parse], over an adapter's defaults) reads the DSN
// vocabulary every adapter's Open takes (redis://, rediss:// and unix://
// URLs, the database as the path or db=, user and password from the
// userinfo, the [Options] pool_size, dial_timeout, read_timeout,
// write_timeout, client_name, addr and master_name, and the
// client-specific options an adapter names) and rejects any other
// option; its errors match [ErrInvalidURL], which Open reports as
// matching relock.ErrInvalidArgument, and never show the password.
//
// # Time
//
// relock passes TTLs of at least 1 ms, in whole milliseconds. A key whose
// deadline has passed must read as missing, and, as in Redis 7, a watched
// key that expires between WATCH and EXEC should abort the transaction.
package driver

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors a driver must return, wrapped or not, for the situations
// they name.
var (
	// ErrNoScript reports that EvalSha named a script the server does not
	// have in its cache (a NOSCRIPT reply). relock then calls Eval.
	ErrNoScript = errors.New("relock/driver: NOSCRIPT no matching script")

	// ErrWrongType reports a WRONGTYPE reply: the key holds a value that is
	// not a string.
	ErrWrongType = errors.New("relock/driver: WRONGTYPE key holds a value that is not a string")

	// ErrTxAborted reports that EXEC returned a nil reply because a watched
	// key changed after WATCH.
	ErrTxAborted = errors.New("relock/driver: transaction aborted, a watched key changed")

	// ErrNoPermission reports a NOPERM reply: the connection's ACL user may
	// not run the command (EVALSHA for a user without @scripting) or touch
	// the key or channel; also NOAUTH and WRONGPASS, a connection that
	// could not authenticate. It is permanent for that command and key:
	// trying again does not help. relock reports it as
	// relock.ErrNoPermission.
	ErrNoPermission = errors.New("relock/driver: NOPERM no permission")

	// ErrServerRefused reports a reply by which the server refuses a
	// command for now, although it may accept it later: BUSY (a script
	// runs too long), LOADING, TRYAGAIN, MASTERDOWN, CLUSTERDOWN, OOM
	// (maxmemory with noeviction), READONLY (a replica, or a demoted
	// master), MISCONF (a failing RDB save), NOREPLICAS
	// (min-replicas-to-write) and "max number of clients reached". Nothing
	// was written by the refused command. relock reports it as
	// relock.ErrUnavailable, and Obtain retries it.
	ErrServerRefused = errors.New("relock/driver: server refused the command for now")
)

// Driver opens connections from a data source name. Adapters register one
// with relock.Register in an init function, like database/sql drivers.
type Driver interface {
	// Open returns a new Conn for dsn, a redis:// or rediss:// URL parsed
	// by the client library's own URL parser. The Conn owns the client it
	// made: its Close closes that client. The three adapters follow one
	// rule, which other drivers should follow too: Open does not connect
	// (an unreachable server shows on the first call, within its
	// context); a malformed URL or an unknown query option fails Open with
	// an error matching relock.ErrInvalidArgument, without the password
	// in its text; and the client made ends every call at its context's
	// deadline.
	Open(dsn string) (Conn, error)
}

// Conn is the interface every driver implements. See the package doc for
// the rules on concurrency, replies and errors.
type Conn interface {
	// SetNX runs SET key value NX PX ttl, with ttl in whole milliseconds
	// (relock never passes less than 1 ms). It reports whether the key was
	// set: false, nil means the key existed.
	SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error)

	// Get runs GET key. ok is false, and err nil, when the key does not exist.
	Get(ctx context.Context, key string) (value string, ok bool, err error)

	// Close releases what the Conn owns. A Conn that wraps a client the
	// user built and handed over must not close that client: the user owns
	// it. Close must be safe to call more than once.
	Close() error
}

// Validator is implemented by drivers that can tell, without touching the
// network, that they were built wrong: an adapter wrapping a nil client, a
// typed nil, a pool without a dial function. relock.New calls Validate and
// fails with relock.ErrInvalidArgument (wrapping Validate's error) instead
// of handing out a Client whose every call would fail. Validate must not
// block or send anything.
//
// Fallback: without Validator, relock.New only rejects a nil Conn.
type Validator interface {
	Validate() error
}

// Scripter is implemented by drivers whose backend runs Lua scripts.
//
// Fallback: without Scripter, relock uses Watcher.
type Scripter interface {
	// Eval runs EVAL script numkeys keys... args....
	Eval(ctx context.Context, script string, keys []string, args ...string) (any, error)

	// EvalSha runs EVALSHA sha1 numkeys keys... args.... It returns an error
	// matching ErrNoScript when the server does not know the script; relock
	// then calls Eval, which loads it.
	EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error)
}

// Watcher is implemented by drivers that can run an optimistic transaction
// on one pinned connection.
//
// Fallback: without Watcher, relock uses Scripter.
type Watcher interface {
	// Watch pins one connection, runs WATCH keys... on it and calls fn with
	// a Tx bound to that connection. It returns fn's error. When fn
	// returns, the connection must be left without a watch (UNWATCH, or
	// the EXEC that fn ran) before it goes back to a pool.
	Watch(ctx context.Context, keys []string, fn func(Tx) error) error
}

// Tx runs commands on the connection that Watcher.Watch pinned. It is valid
// only while the fn given to Watch runs.
type Tx interface {
	// Get runs GET key on the pinned connection, with the same reply rules
	// as Conn.Get.
	Get(ctx context.Context, key string) (value string, ok bool, err error)

	// Exec runs MULTI, the given commands (each one a command name and its
	// arguments, for example {"DEL", key}) and EXEC on the pinned
	// connection, and returns the replies of the commands in order, mapped
	// as the package doc says. When EXEC returns a nil reply because a
	// watched key changed, Exec returns an error matching ErrTxAborted.
	// When a queued command fails (EXECABORT, or an error reply inside
	// EXEC's array), Exec returns an error that does not match
	// ErrTxAborted. Exec must pass any command through; relock sends GET,
	// SET (with PX), DEL, PEXPIRE, PTTL and INCR today.
	Exec(ctx context.Context, cmds ...[]string) ([]any, error)
}

// ReplicaWaiter is implemented by drivers that can follow a script call
// with WAIT on the same connection. WAIT counts only the writes made on the
// connection it is sent on, so the script and the WAIT must share one
// connection; drivers should pipeline the two (one round trip).
//
// relock uses it when a caller asks for replica acknowledgement
// (relock.WithReplicas). Fallback: none; without ReplicaWaiter such a call
// fails with relock.ErrUnsupported and nothing is sent. A driver that
// implements ReplicaWaiter but cannot serve it for the backend at hand (a
// cluster client that cannot pin the key's node, say) returns an error
// matching errors.ErrUnsupported, and sends nothing.
type ReplicaWaiter interface {
	// EvalShaWait sends EVALSHA sha1 numkeys keys... args... and then
	// WAIT replicas timeout-in-ms on the same connection. It returns the
	// script's reply (mapped as the package doc says) and WAIT's reply,
	// the number of replicas that acknowledged the connection's writes.
	// A NOSCRIPT reply to EVALSHA gives an error matching ErrNoScript,
	// whatever WAIT answered.
	EvalShaWait(ctx context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (reply any, acked int, err error)

	// EvalWait is EvalShaWait with EVAL script instead of EVALSHA.
	EvalWait(ctx context.Context, script string, keys, args []string, replicas int, timeout time.Duration) (reply any, acked int, err error)
}

// Subscriber is implemented by drivers that can receive pub/sub messages.
// relock uses it to wake a waiter the moment a lock is handed over to it,
// instead of polling.
//
// A Subscription is one connection and no more: it does not reconnect.
// When its connection breaks, it closes Done; relock's notifier then opens
// a new Subscription with backoff and adds its channels again. Waiters
// renew their place in the queue several times a second and learn of a
// hand-over from that renewal too, so a message lost while no
// subscription was open costs a waiter at most one renewal interval.
//
// Fallback: without Subscriber (or without Scripter, which the hand-over
// needs), waiters poll as the retry strategy says.
type Subscriber interface {
	// Subscribe opens one subscription connection, separate from the
	// connections that run commands, and calls onMessage for every message
	// published on the channels later added to it, in the order received,
	// from one goroutine at a time. onMessage must not block for long;
	// relock's does not. It returns once the connection is open (or ctx
	// ended); a failure to connect is its error.
	Subscribe(ctx context.Context, onMessage func(channel, payload string)) (Subscription, error)
}

// Subscription is one subscription connection opened by Subscriber.
// Its methods are safe for concurrent use.
type Subscription interface {
	// Add subscribes to channels (SUBSCRIBE) and returns only after the
	// server has confirmed every one of them, so that a message published
	// after Add returns is delivered. On a subscription whose Done is
	// closed it fails at once.
	Add(ctx context.Context, channels ...string) error

	// Remove unsubscribes from channels (UNSUBSCRIBE). It may return
	// before the server has confirmed, but commands go out in order on
	// the one connection: once a later Add returns, no message published
	// on the removed channels after that is delivered. Messages on
	// channels not removed keep coming.
	Remove(ctx context.Context, channels ...string) error

	// Done is closed when the subscription has ended: its connection
	// broke (a read or write failed, the server closed it, CLIENT KILL),
	// or Close was called. After that, no message is delivered and Add
	// fails. A driver whose client reconnects by itself may instead keep
	// Done open and subscribe again to every channel on the new
	// connection before delivering more; relock then never reopens it.
	Done() <-chan struct{}

	// Close ends the subscription. When it returns, onMessage is not
	// running and will not be called again, and every goroutine the
	// subscription started has exited. Close must be safe to call more
	// than once, and after Done is closed.
	Close() error
}
