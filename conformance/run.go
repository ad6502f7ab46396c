package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

// Run runs the suite against the backend that h reaches. Its subtests:
//
//   - Harness: the hooks h sets do what Harness documents.
//   - Driver: the raw driver methods, one subtest per promise of the driver
//     package: reply mapping and error translation; ScripterOrWatcher;
//     ConcurrentUse; Context/Cancelled, Context/Deadline and
//     Context/InFlight (every method honours its context: a deadline, and
//     a cancellation while the call waits for a server that never
//     answers, each within 350 ms); AfterClose (every method fails, none
//     panics); Driver/Scripter, Driver/Watcher (errors inside EXEC,
//     EXECABORT, expiry of a watched key), Driver/ReplicaWaiter (NOSCRIPT;
//     WAIT after the script on its connection, seen on the wire through
//     the suite's proxy and by stalled replicas; WAIT's timeout) and
//     Driver/Subscriber (delivery after Add, no loss in order and in a
//     burst, isolation between subscriptions, Remove, one callback at a
//     time, Close, goroutines compared by stack) for the optional
//     capabilities; Values (generated TTLs to the millisecond, reply
//     shapes and error texts, from a fixed seed the subtests print);
//     Network (refused, reset and silent connections under the driver
//     give errors, never answers); Validate (returns nil at once, whatever
//     the network, and sends nothing).
//   - Obtain, Release, Refresh, TTL, Inspect, NoScript, WrongType, Contention,
//     Closed, BadInput: the portable relock API over the driver. Each leaf
//     runs once per path, as .../Script (driver.Scripter) and .../Watch
//     (driver.Watcher); a path the driver lacks is skipped by name.
//     Release and Refresh also run with the key changed between the GET
//     and the EXEC of the WATCH path; Inspect tells free from held.
//   - Lease: validity, auto-refresh and the lost-lock signal (LostOnDelete,
//     LostOnFlushAll, LostOnStall need the Harness hooks of those names),
//     Client.Do, fencing numbers and replica acknowledgement.
//   - Wake: waiters woken by a hand-over on release (driver.Subscriber),
//     promptly (woken, not polling), the fallback when a notification is
//     lost, FIFO order, and no subscription left after Close.
//   - Primitives: the semaphore (Primitives/Semaphore) and the read-write
//     lock (Primitives/RWLock) through the portable API: what they need of
//     a driver beyond the mutex (their scripts' replies; several hand-overs
//     announced by one script call, each delivered: two permits freed at
//     once, a batch of readers woken by a writer's release); on the WATCH
//     path, ErrUnsupported.
//   - Paths/SameAnswers: where a driver has both paths, one scenario gives
//     the same answers through each.
//
// At the end it logs a summary: the hooks h leaves nil and the
// capabilities the driver lacks, with what the run did not check for
// want of each.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.NewConn == nil {
		t.Fatal("conformance: Harness.NewConn is nil")
	}
	h.root = t.Name()
	t.Run("Harness", func(t *testing.T) { testHarness(t, h) })
	t.Run("Driver", func(t *testing.T) { testDriver(t, h) })
	t.Run("Obtain", func(t *testing.T) { testObtain(t, h) })
	t.Run("Release", func(t *testing.T) { testRelease(t, h) })
	t.Run("Refresh", func(t *testing.T) { testRefresh(t, h) })
	t.Run("TTL", func(t *testing.T) { testTTL(t, h) })
	t.Run("Inspect", func(t *testing.T) { testInspect(t, h) })
	t.Run("NoScript", paths(h, testNoScript))
	t.Run("WrongType", paths(h, testWrongType))
	t.Run("Contention", paths(h, testContention))
	t.Run("Closed", paths(h, testClosed))
	t.Run("BadInput", paths(h, testBadInput))
	t.Run("Lease", func(t *testing.T) { testLease(t, h) })
	t.Run("Wake", func(t *testing.T) { testWake(t, h) })
	t.Run("Primitives", func(t *testing.T) { testPrimitives(t, h) })
	t.Run("Paths", func(t *testing.T) {
		t.Run("SameAnswers", func(t *testing.T) { testSameAnswers(t, h) })
	})
	summarize(t, h)
}

// env is one subtest's view of the backend: fresh keys, the hooks.
type env struct {
	t      *testing.T
	h      Harness
	prefix string
}

func newEnv(t *testing.T, h Harness) *env {
	h.skipKnown(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &env{t: t, h: h, prefix: "relock-conformance:" + hex.EncodeToString(b[:]) + ":"}
}

// key names a key of this subtest. All of them share one hash tag, so that
// a subtest's keys live in one slot of a Redis Cluster.
func (e *env) key(name string) string { return "{" + e.prefix + "}" + name }

// conn returns a new connection from the harness, closed when the test ends.
func (e *env) conn() driver.Conn {
	e.t.Helper()
	c := e.h.NewConn(e.t)
	if c == nil {
		e.t.Fatal("conformance: Harness.NewConn returned nil")
	}
	e.t.Cleanup(func() {
		if _, panicked := callSafely(c.Close); panicked != nil {
			e.t.Errorf("Close of the connection at the end of the subtest panicked: %v", panicked)
		}
	})
	return c
}

// setWrongType plants a key of another type at key through the harness,
// and deletes it when t ends if the harness can (a shared server keeps
// keys without a TTL forever).
func setWrongType(t *testing.T, h Harness, key string) {
	t.Helper()
	h.SetWrongType(t, key)
	if h.Delete != nil {
		t.Cleanup(func() { h.Delete(t, key) })
	}
}

// advance lets d pass for the backend's TTLs.
func (e *env) advance(d time.Duration) {
	e.t.Helper()
	if e.h.Advance != nil {
		e.h.Advance(e.t, d)
		return
	}
	time.Sleep(d)
}

// setup is a portable subtest: one path, one probe-wrapped connection and a
// client over it.
type setup struct {
	*env
	path   string
	probe  *probe
	client *relock.Client
	lock   *relock.Lock // the lock of a subtest that needs one in its helpers
}

// paths returns a test that runs fn once per path, as subtests named
// Script and Watch.
func paths(h Harness, fn func(t *testing.T, s *setup)) func(*testing.T) {
	return func(t *testing.T) {
		for _, path := range []string{pathScript, pathWatch} {
			t.Run(path, func(t *testing.T) {
				s := newSetup(t, h, path)
				fn(t, s)
			})
		}
	}
}

func newSetup(t *testing.T, h Harness, path string) *setup {
	t.Helper()
	e := newEnv(t, h)
	p := newProbe(e.conn())
	if !p.has(path) {
		if path == pathScript {
			t.Skip("driver does not implement driver.Scripter: the script path is not tested")
		}
		t.Skip("driver does not implement driver.Watcher: the WATCH/MULTI/EXEC path is not tested")
	}
	c, err := relock.New(p.view(path))
	if err != nil {
		t.Fatalf("relock.New over the %s path: %v", path, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	e.warm(p)
	return &setup{env: e, path: path, probe: p, client: c}
}

// warm makes one call on p's connection, around the probe, so that the
// subtest's first timed call does not dial (or, on a cluster, read the
// slot map). A cold first call under -race on a loaded 2-core machine
// took longer than the suite's 100-300 ms TTLs: the lock was dead on
// arrival ("lock not obtained") or ran out before the next step (load run
// of issue 19 item 4, several adapters, miniredis too: validity is kept
// by the client's clock). The suite tests locks, not a connection's
// start.
func (e *env) warm(p *probe) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := p.conn.Get(ctx, e.key("warm")); err != nil {
		e.t.Logf("warming a connection: %v", err)
	}
}

// other returns a client of another owner, on a connection of its own, over
// the same path.
func (s *setup) other(opts ...relock.Option) (*relock.Client, *probe) {
	s.t.Helper()
	p := newProbe(s.conn())
	c, err := relock.New(p.view(s.path), opts...)
	if err != nil {
		s.t.Fatalf("relock.New: %v", err)
	}
	s.t.Cleanup(func() { _ = c.Close() })
	s.warm(p)
	return c, p
}

// get reads key through the raw driver, bypassing the probe.
func (s *setup) get(key string) (string, bool) {
	s.t.Helper()
	v, ok, err := s.probe.conn.Get(context.Background(), key)
	if err != nil {
		s.t.Fatalf("Get(%q): %v", key, err)
	}
	return v, ok
}

// wantHolder fails unless key holds token.
func (s *setup) wantHolder(key, token, why string) {
	s.t.Helper()
	v, ok := s.get(key)
	switch {
	case !ok:
		s.t.Fatalf("%s: key %q is gone, want it to hold %q", why, key, token)
	case v != token:
		s.t.Fatalf("%s: key %q holds %q, want %q", why, key, v, token)
	}
}

// wantGone fails unless key does not exist.
func (s *setup) wantGone(key, why string) {
	s.t.Helper()
	if v, ok := s.get(key); ok {
		s.t.Fatalf("%s: key %q still holds %q, want it gone", why, key, v)
	}
}

// wantCleanedUp fails unless key is gone soon: the clean-up after a failed
// try runs in the background, started before Obtain returns, so on a
// healthy backend it takes one round trip.
func (s *setup) wantCleanedUp(key, why string) {
	s.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		v, ok := s.get(key)
		if !ok {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: key %q still holds %q 3s later, want it cleaned up", why, key, v)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *setup) mustObtain(c *relock.Client, key string, ttl time.Duration) *relock.Lock {
	s.t.Helper()
	l, err := c.TryObtain(context.Background(), key, ttl)
	if err != nil {
		s.t.Fatalf("TryObtain(%q, %v): %v", key, ttl, err)
	}
	return l
}

// wantIs fails unless err matches every target.
func wantIs(t *testing.T, what string, err error, targets ...error) {
	t.Helper()
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Fatalf("%s: got error %v, want one matching %v", what, err, target)
		}
	}
}

// wantNotIs fails if err matches any target.
func wantNotIs(t *testing.T, what string, err error, targets ...error) {
	t.Helper()
	for _, target := range targets {
		if errors.Is(err, target) {
			t.Fatalf("%s: got error %v, which must not match %v", what, err, target)
		}
	}
}

func bg() context.Context { return context.Background() }

// needAddr skips t unless the harness gives Addr and NewConnTo, which the
// suite needs to put servers of its own under the driver.
func needAddr(t *testing.T, h Harness) {
	t.Helper()
	if h.Addr == "" || h.NewConnTo == nil {
		t.Skip("Harness.Addr or Harness.NewConnTo is not set: the suite cannot put its own proxy or server under the driver")
	}
}

// connTo returns a new connection from the harness to addr, closed when
// the test ends.
func (e *env) connTo(addr string) driver.Conn {
	e.t.Helper()
	c := e.h.NewConnTo(e.t, addr)
	if c == nil {
		e.t.Fatal("conformance: Harness.NewConnTo returned nil")
	}
	e.t.Cleanup(func() {
		if _, panicked := callSafely(c.Close); panicked != nil {
			e.t.Errorf("Close of the connection at the end of the subtest panicked: %v", panicked)
		}
	})
	return c
}

// silentConn returns a connection to a server that never answers: through
// Harness.NewSilentConn, or, without it, through Harness.NewConnTo to a
// SilentServer. It skips t when the harness has neither. The server is hung
// up before the connection is closed, so that calls still blocked on it
// end.
func silentConn(t *testing.T, h Harness) driver.Conn {
	t.Helper()
	var conn driver.Conn
	switch {
	case h.NewSilentConn != nil:
		conn = h.NewSilentConn(t)
	case h.NewConnTo != nil:
		conn = h.NewConnTo(t, SilentServer(t))
	default:
		t.Skip("Harness.NewSilentConn and Harness.NewConnTo are nil: no server that never answers")
	}
	if conn == nil {
		t.Fatal("conformance: the harness returned a nil connection to the silent server")
	}
	t.Cleanup(func() { _ = conn.Close() })
	// Runs first: a call left blocked ends when the server hangs up, so
	// Close need not wait for it.
	t.Cleanup(func() { hangUpSilentServers(t) })
	return conn
}
