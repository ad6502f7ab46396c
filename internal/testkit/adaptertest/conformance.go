package adaptertest

import (
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/relock-go/relock/conformance"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// Backend is a server the conformance suite runs against.
type Backend struct {
	Addr string
	Mini *miniredis.Miniredis // nil for a redis-server
}

// NewConnFunc makes a driver connection to b, through a client that t
// closes when it ends (the suite's Close of the Conn must leave a user's
// client open).
type NewConnFunc func(t *testing.T, b Backend) driver.Conn

// ServerHarness is the conformance harness over b: every NewConn reaches
// it through newConn. The hooks send their commands through testredis's own
// RESP client, not the adapter's; on a miniredis, Advance fast-forwards it.
// FlushAll, PauseWrites and Replicas are left for the caller, who knows
// what it may do to the server.
func ServerHarness(b Backend, newConn NewConnFunc) conformance.Harness {
	addr := b.Addr
	h := conformance.Harness{
		NewConn:      func(t *testing.T) driver.Conn { return newConn(t, b) },
		FlushScripts: func(t *testing.T) { mustDo(t, addr, "SCRIPT", "FLUSH") },
		SetWrongType: func(t *testing.T, key string) { mustDo(t, addr, "HSET", key, "f", "v") },
		Delete:       func(t *testing.T, key string) { mustDo(t, addr, "DEL", key) },
	}
	if m := b.Mini; m != nil {
		h.Advance = func(_ *testing.T, d time.Duration) { m.FastForward(d) }
	}
	return h
}

// RunConformance runs the conformance suite through newConn against a
// fresh miniredis (with Advance and FlushAll), the shared real server
// (neither FlushAll nor PauseWrites: other tests use it), and a private
// server with one replica (every hook).
//
// Under go test -short it runs against miniredis only: the suite waits for
// real TTLs on a real server (about 16 s a run, against 10 s on miniredis,
// whose clock it advances), and the quick run must stay well under a
// minute for the whole module. The full run, which CI makes, has all three.
func RunConformance(t *testing.T, newConn NewConnFunc) {
	t.Run("miniredis", func(t *testing.T) {
		// One server for the whole run, so that the connections of one
		// subtest (and of all of them) share their data.
		m := miniredis.RunT(t)
		h := ServerHarness(Backend{Addr: m.Addr(), Mini: m}, newConn)
		h.FlushAll = func(t *testing.T) { mustDo(t, m.Addr(), "FLUSHALL") }
		conformance.Run(t, h)
	})
	t.Run("redis", func(t *testing.T) {
		testredis.SkipShort(t, "runs the conformance suite on the shared server (miniredis has it under -short)")
		conformance.Run(t, ServerHarness(Backend{Addr: testredis.Addr(t)}, newConn))
	})
	t.Run("private", func(t *testing.T) {
		testredis.SkipShort(t, "runs the conformance suite on a private server with a replica")
		srv := testredis.Start(t)
		testredis.StartReplica(t, srv)
		h := ServerHarness(Backend{Addr: srv.Addr()}, newConn)
		h.FlushAll = func(t *testing.T) { mustDo(t, srv.Addr(), "FLUSHALL") }
		h.PauseWrites = func(t *testing.T, d time.Duration) {
			// CLIENT PAUSE ms WRITE answers at once.
			ms := (d + time.Millisecond - 1) / time.Millisecond
			mustDo(t, srv.Addr(), "CLIENT", "PAUSE", strconv.FormatInt(int64(ms), 10), "WRITE")
		}
		h.Replicas = 1
		conformance.Run(t, h)
	})
}

// mustDo sends one command to the server at addr and fails t on an error.
func mustDo(t *testing.T, addr string, args ...string) {
	t.Helper()
	if _, err := testredis.Do(addr, args...); err != nil {
		t.Fatalf("%v on %s: %v", args, addr, err)
	}
}
