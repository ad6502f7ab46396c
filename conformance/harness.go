package conformance

import (
	"strings"
	"testing"
	"time"

	"github.com/relock-go/relock/driver"
)

// Harness tells the suite how to reach the backend under test. Only NewConn
// is required; a nil hook skips, by name, the subtests that need it.
type Harness struct {
	// NewConn returns a driver connection to the backend under test. The
	// suite calls it at least once per subtest and closes what it gets
	// back through relock.Client.Close or Conn.Close; register anything
	// else to clean up with t.Cleanup. Connections made for one subtest
	// must reach the same data, so that two of them contend for a key.
	// The suite uses keys under a random prefix, so a shared server works.
	NewConn func(t *testing.T) driver.Conn

	// Advance moves the backend's clock forward by d, so that keys with a
	// TTL of d or less expire. Nil means real time: the suite sleeps,
	// which suits a real Redis server. A backend whose keys do not expire
	// in real time (miniredis) must set it.
	Advance func(t *testing.T, d time.Duration)

	// FlushScripts empties the server's script cache, as SCRIPT FLUSH does,
	// so that the next EVALSHA gets NOSCRIPT. Nil skips the subtests named
	// NoScript.
	FlushScripts func(t *testing.T)

	// SetWrongType stores a value that is not a string (a hash, say) at
	// key. Nil skips the subtests named WrongType.
	SetWrongType func(t *testing.T, key string)

	// Delete removes key behind the lock holder's back, as DEL does. Nil
	// skips the subtests named LostOnDelete.
	Delete func(t *testing.T, key string)

	// FlushAll empties the whole backend, as FLUSHALL does. Nil skips the
	// subtests named LostOnFlushAll. Give it only on a backend the test
	// owns: it deletes every key, the fencing counters included.
	FlushAll func(t *testing.T)

	// PauseWrites stalls every write for d, as CLIENT PAUSE d WRITE does,
	// and returns at once. Nil skips the subtests named LostOnStall. Give
	// it only on a backend the test owns.
	PauseWrites func(t *testing.T, d time.Duration)

	// Replicas is how many replicas acknowledge the backend's writes
	// (WAIT's answer when all is well). The replica subtests ask for more
	// than this to see a failure, and for exactly this many, when it is
	// above zero, to see a success.
	Replicas int

	// StallReplicas makes every replica stop acknowledging writes for d
	// (DEBUG SLEEP on each replica, or SIGSTOP then SIGCONT), and returns
	// once the stall is in force, without waiting for it to end. It needs
	// Replicas > 0. It makes visible on which connection a driver sends
	// WAIT: WAIT counts only the writes of its own connection, so a WAIT
	// on a connection that wrote nothing answers at once, stall or not.
	// Nil skips Driver/ReplicaWaiter/SameConnection (Wire, through Addr,
	// checks the same without it). Give it only on a backend the test
	// owns.
	StallReplicas func(t *testing.T, d time.Duration)

	// Publish sends payload on channel, as PUBLISH does, through a
	// connection of its own (not the driver under test), and returns once
	// the server has answered. Nil makes the Driver/Subscriber subtests
	// publish through the driver itself, on another connection: PUBLISH in
	// a script (Scripter) or in a transaction (Watcher); a driver with
	// neither skips them.
	Publish func(t *testing.T, channel, payload string)

	// NewSilentConn returns a driver connection, built as NewConn builds
	// them, to a server that accepts connections and never answers a
	// command: usually one started with SilentServer. The suite closes
	// it. Driver/Context/Deadline and Driver/Context/InFlight use it to
	// check that every call returns within 350 ms of its context's
	// deadline or cancellation, with the context's error. Nil makes them
	// use NewConnTo to a SilentServer of the suite's own; with both nil
	// they are skipped.
	NewSilentConn func(t *testing.T) driver.Conn

	// Addr is the address (host:port) of the backend's server, where the
	// backend is one server that a driver reaches by its address alone
	// (not a cluster, not Sentinel). With NewConnTo, it lets the suite put
	// in-process servers of its own under the driver, with no other hook:
	// a proxy that refuses, resets or goes silent (Driver/Network), a
	// silent server when NewSilentConn is nil (Driver/Context/Deadline,
	// Driver/Context/InFlight), a proxy that sees on which connection WAIT
	// goes (Driver/ReplicaWaiter/Wire) and what Validate sends
	// (Driver/Validate), and a server that answers chosen error replies
	// (Driver/Values/ErrorTexts/Commands).
	Addr string

	// NewConnTo returns a driver connection, built as NewConn builds them,
	// to the server at addr, which may be a proxy to Addr or a server the
	// suite runs. The suite closes it. Nil, or Addr empty, skips by name
	// the subtests listed at Addr.
	NewConnTo func(t *testing.T, addr string) driver.Conn

	// KnownFailures skips subtests that the backend is known to fail,
	// each with the reason given (say, the issue that tracks the fix).
	// Keys are subtest names below the test that called Run, as
	// "Driver/Context/Deadline/Eval"; a key also covers every subtest
	// below it. Use it only while a fix is pending: a known failure is
	// still a broken promise.
	KnownFailures map[string]string

	// root is the name of the test that called Run.
	root string
}

// skipKnown skips t if h.KnownFailures names it or a test above it.
func (h Harness) skipKnown(t *testing.T) {
	t.Helper()
	if name, reason, ok := h.known(t.Name()); ok {
		t.Skipf("known failure (Harness.KnownFailures[%q]): %s", name, reason)
	}
}

// known reports whether h.KnownFailures names the test called full (as
// t.Name() gives it) or a test above it, and which, with its reason.
func (h Harness) known(full string) (name, reason string, ok bool) {
	if len(h.KnownFailures) == 0 || h.root == "" {
		return "", "", false
	}
	name, ok = strings.CutPrefix(full, h.root+"/")
	if !ok {
		return "", "", false
	}
	for {
		if reason, ok := h.KnownFailures[name]; ok {
			return name, reason, true
		}
		i := strings.LastIndexByte(name, '/')
		if i < 0 {
			return "", "", false
		}
		name = name[:i]
	}
}
