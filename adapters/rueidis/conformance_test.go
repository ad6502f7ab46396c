package rueidisadapter_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	rueidisadapter "github.com/relock-go/relock/adapters/rueidis"
	"github.com/relock-go/relock/conformance"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testredis"
)

// harness builds the conformance harness for b. Every NewConn call gets a
// fresh rueidis client to the same server, closed when the subtest ends
// (the suite closes only the Conn, which leaves a user's client open). An
// admin client, closed when the run ends, flushes scripts and plants
// hashes.
func harness(t *testing.T, b backend) conformance.Harness {
	admin := newClient(t, b, nil)
	h := conformance.Harness{
		NewConn: func(t *testing.T) driver.Conn {
			return rueidisadapter.New(newClient(t, b, nil))
		},
		FlushScripts: func(t *testing.T) {
			t.Helper()
			do(t, admin, "SCRIPT", "FLUSH")
		},
		SetWrongType: func(t *testing.T, key string) {
			t.Helper()
			setHash(t, admin, key)
			t.Cleanup(func() { admin.Do(context.Background(), admin.B().Del().Key(key).Build()) })
		},
		Delete: func(t *testing.T, key string) {
			t.Helper()
			do(t, admin, "DEL", key)
		},
	}
	if m := b.mini; m != nil {
		h.Advance = func(_ *testing.T, d time.Duration) { m.FastForward(d) }
	}
	return h
}

// flushAll is the FlushAll hook for a server the test owns.
func flushAll(t *testing.T, b backend) func(t *testing.T) {
	admin := newClient(t, b, nil)
	return func(t *testing.T) {
		t.Helper()
		do(t, admin, "FLUSHALL")
	}
}

// pauseWrites is the PauseWrites hook for a private server: CLIENT PAUSE
// ms WRITE, which answers at once.
func pauseWrites(srv *testredis.Server) func(t *testing.T, d time.Duration) {
	return func(t *testing.T, d time.Duration) {
		ms := (d + time.Millisecond - 1) / time.Millisecond
		if _, err := srv.Do("CLIENT", "PAUSE", strconv.FormatInt(int64(ms), 10), "WRITE"); err != nil {
			t.Fatalf("CLIENT PAUSE %d WRITE: %v", ms, err)
		}
	}
}

func TestConformance(t *testing.T) {
	t.Run("miniredis", func(t *testing.T) {
		m := miniredis.RunT(t) // one server for the whole run
		b := backend{addr: m.Addr(), mini: m}
		h := harness(t, b)
		h.FlushAll = flushAll(t, b)
		conformance.Run(t, h)
	})
	t.Run("redis", func(t *testing.T) {
		// Shared with other tests: no FlushAll, no PauseWrites.
		h := harness(t, backend{addr: testredis.Addr(t)})
		conformance.Run(t, h)
	})
	t.Run("private", func(t *testing.T) {
		srv := testredis.Start(t)
		testredis.StartReplica(t, srv)
		b := backend{addr: srv.Addr()}
		h := harness(t, b)
		h.FlushAll = flushAll(t, b)
		h.PauseWrites = pauseWrites(srv)
		h.Replicas = 1
		conformance.Run(t, h)
	})
}

// TestHarness checks the hooks themselves, which conformance.Run will rely
// on: connections reach the same data, FlushScripts makes EVALSHA fail,
// SetWrongType plants a non-string, Advance expires keys.
func TestHarness(t *testing.T) {
	ctx := context.Background()
	eachBackend(t, func(t *testing.T, b backend) {
		h := harness(t, b)
		c1, c2 := h.NewConn(t), h.NewConn(t)
		defer c1.Close()
		defer c2.Close()
		key := newKey(t, newClient(t, b, nil))

		if ok, err := c1.SetNX(ctx, key, "one", 50*time.Millisecond); !ok || err != nil {
			t.Fatalf("SetNX on the first conn = %v, %v", ok, err)
		}
		if ok, err := c2.SetNX(ctx, key, "two", time.Second); ok || err != nil {
			t.Fatalf("SetNX on the second conn = %v, %v; want false, nil", ok, err)
		}

		if h.Advance != nil {
			h.Advance(t, 50*time.Millisecond)
		} else {
			time.Sleep(80 * time.Millisecond)
		}
		if _, ok, err := c2.Get(ctx, key); ok || err != nil {
			t.Fatalf("Get after the TTL = %v, %v; want a missing key", ok, err)
		}

		s := c1.(driver.Scripter)
		if _, err := s.Eval(ctx, "return 1", nil); err != nil {
			t.Fatal(err)
		}
		h.FlushScripts(t)
		if _, err := s.EvalSha(ctx, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", nil); !errIsNoScript(err) {
			t.Fatalf("EvalSha after FlushScripts: %v; want NOSCRIPT", err)
		}

		h.SetWrongType(t, key)
		if _, _, err := c2.Get(ctx, key); !errIsWrongType(err) {
			t.Fatalf("Get of the planted key: %v; want WRONGTYPE", err)
		}
	})
}

func errIsNoScript(err error) bool  { return errors.Is(err, driver.ErrNoScript) }
func errIsWrongType(err error) bool { return errors.Is(err, driver.ErrWrongType) }
