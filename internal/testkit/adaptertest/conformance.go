package adaptertest

import (
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/relock-go/relock/conformance"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// Backend is a server the conformance suite runs against.
type Backend struct {
	Addr string
	// Advance moves the server's clock forward (a miniredis's
	// FastForward); nil for a redis-server.
	Advance func(time.Duration)
}

// NewConnFunc makes a driver connection to b, through a client that t
// closes when it ends (the suite's Close of the Conn must leave a user's
// client open).
type NewConnFunc func(t *testing.T, b Backend) driver.Conn

// ServerHarness is the conformance harness over b: every NewConn reaches
// it through newConn. The hooks send their commands through testredis's own
// RESP client, not the adapter's; on a miniredis, Advance fast-forwards it.
// NewSilentConn is newConn to a conformance.SilentServer; Addr is b's and
// NewConnTo is newConn to another address, as a client for b. FlushAll,
// PauseWrites, Replicas and StallReplicas are left for the caller, who
// knows what it may do to the server.
func ServerHarness(b Backend, newConn NewConnFunc) conformance.Harness {
	addr := b.Addr
	h := conformance.Harness{
		NewConn:      func(t *testing.T) driver.Conn { return newConn(t, b) },
		FlushScripts: func(t *testing.T) { mustDo(t, addr, "SCRIPT", "FLUSH") },
		SetWrongType: func(t *testing.T, key string) { mustDo(t, addr, "HSET", key, "f", "v") },
		Delete:       func(t *testing.T, key string) { mustDo(t, addr, "DEL", key) },
		Publish:      func(t *testing.T, channel, payload string) { mustDo(t, addr, "PUBLISH", channel, payload) },
		NewSilentConn: func(t *testing.T) driver.Conn {
			return newConn(t, Backend{Addr: conformance.SilentServer(t)})
		},
		// The suite's proxies lead to b and its fake servers stand for
		// it: the client is set up for b's kind of server.
		Addr: addr,
		NewConnTo: func(t *testing.T, to string) driver.Conn {
			return newConn(t, Backend{Addr: to, Advance: b.Advance})
		},
	}
	if adv := b.Advance; adv != nil {
		h.Advance = func(_ *testing.T, d time.Duration) { adv(d) }
	}
	return h
}

// Known lists the conformance subtests an adapter is known to fail on
// each backend of RunConformance ("miniredis", "redis", "private"), as
// Harness.KnownFailures: subtest name to reason. Every entry stands for a
// pending fix; remove it with the fix.
type Known map[string]map[string]string

// RunConformance runs the conformance suite through newConn against the
// shared real server (neither FlushAll nor PauseWrites: other tests use
// it), and a private server with one replica (every hook).
//
// Under go test -short it runs nothing: the suite waits for real TTLs on a
// real server (about 16 s a run). The run on miniredis, which advances its
// clock and fits the quick run, is minitest.RunConformance, in the tests
// module: an adapter's own tests import no miniredis, so that a user of
// the adapter gets none in go.sum.
func RunConformance(t *testing.T, newConn NewConnFunc) { RunConformanceKnown(t, newConn, nil) }

// RunConformanceKnown is RunConformance that skips, by name and with
// their reason, the subtests known lists for each backend.
func RunConformanceKnown(t *testing.T, newConn NewConnFunc, known Known) {
	t.Run("redis", func(t *testing.T) {
		testredis.SkipShort(t, "runs the conformance suite on the shared server (minitest has it on miniredis under -short)")
		h := ServerHarness(Backend{Addr: testredis.Addr(t)}, newConn)
		h.KnownFailures = known["redis"]
		conformance.Run(t, h)
	})
	t.Run("private", func(t *testing.T) {
		testredis.SkipShort(t, "runs the conformance suite on a private server with a replica")
		h, _ := PrivateHarness(t, newConn)
		h.KnownFailures = known["private"]
		conformance.Run(t, h)
	})
}

// PrivateHarness is ServerHarness over a private server with one replica,
// both stopped when t ends (skipping t without a redis-server binary), with
// every hook: FlushAll, PauseWrites (CLIENT PAUSE on the primary),
// StallReplicas (DEBUG SLEEP on the replica) and Replicas = 1. It returns
// the primary too.
func PrivateHarness(t *testing.T, newConn NewConnFunc) (conformance.Harness, *testredis.Server) {
	srv := testredis.Start(t)
	replica := testredis.StartReplica(t, srv)
	h := ServerHarness(Backend{Addr: srv.Addr()}, newConn)
	h.FlushAll = func(t *testing.T) { mustDo(t, srv.Addr(), "FLUSHALL") }
	h.PauseWrites = func(t *testing.T, d time.Duration) {
		// CLIENT PAUSE ms WRITE answers at once.
		ms := (d + time.Millisecond - 1) / time.Millisecond
		mustDo(t, srv.Addr(), "CLIENT", "PAUSE", strconv.FormatInt(int64(ms), 10), "WRITE")
	}
	h.StallReplicas = func(t *testing.T, d time.Duration) { stall(t, d, replica) }
	h.Replicas = 1
	return h, srv
}

// stall makes each replica sleep for d (DEBUG SLEEP), and returns once
// they sleep; t's clean-up waits until they are awake again.
func stall(t *testing.T, d time.Duration, replicas ...*testredis.Server) {
	t.Helper()
	for _, r := range replicas {
		slept := make(chan error, 1)
		go func() {
			_, err := r.Do("DEBUG", "SLEEP", strconv.FormatFloat(d.Seconds(), 'f', 3, 64))
			slept <- err
		}()
		t.Cleanup(func() {
			if err := <-slept; err != nil {
				t.Errorf("DEBUG SLEEP on the replica %s: %v", r.Addr(), err)
			}
		})
	}
	for _, r := range replicas {
		waitAsleep(t, r.Addr())
	}
}

// waitAsleep returns once the server at addr leaves a PING unanswered for
// 50 ms, or fails t after 2 s.
func waitAsleep(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatalf("waiting for %s to sleep: %v", addr, err)
		}
		_ = c.SetDeadline(time.Now().Add(50 * time.Millisecond))
		_, err = c.Write([]byte("*1\r\n$4\r\nPING\r\n"))
		if err == nil {
			_, err = c.Read(make([]byte, 16))
		}
		_ = c.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return // no answer: asleep
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still answers PING 2s after DEBUG SLEEP was sent (last: %v)", addr, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// MustDo sends one command to the server at addr and fails t on an error.
func MustDo(t *testing.T, addr string, args ...string) {
	t.Helper()
	mustDo(t, addr, args...)
}

// mustDo sends one command to the server at addr and fails t on an error.
func mustDo(t *testing.T, addr string, args ...string) {
	t.Helper()
	if _, err := testredis.Do(addr, args...); err != nil {
		t.Fatalf("%v on %s: %v", args, addr, err)
	}
}
