package rueidisadapter_test

import (
	"context"
	"errors"
	"testing"
	"time"

	rueidisadapter "github.com/relock-go/relock/adapters/rueidis"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
)

// newConn is the conformance suite's NewConn: a fresh rueidis client to
// the server, closed when the subtest ends (the suite closes only the Conn,
// which leaves a user's client open). The run on miniredis is in
// internal/onmini.
func newConn(t *testing.T, b adaptertest.Backend) driver.Conn {
	return rueidisadapter.New(newClient(t, backend{addr: b.Addr}, nil))
}

func TestConformance(t *testing.T) {
	adaptertest.RunConformance(t, newConn)
}

// TestHarness checks the hooks themselves, which conformance.Run relies
// on: connections reach the same data, FlushScripts makes EVALSHA fail,
// SetWrongType plants a non-string.
func TestHarness(t *testing.T) {
	ctx := context.Background()
	onRedis(t, func(t *testing.T, b backend) {
		h := adaptertest.ServerHarness(adaptertest.Backend{Addr: b.addr}, newConn)
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
		time.Sleep(80 * time.Millisecond)
		if _, ok, err := c2.Get(ctx, key); ok || err != nil {
			t.Fatalf("Get after the TTL = %v, %v; want a missing key", ok, err)
		}

		s := c1.(driver.Scripter)
		if _, err := s.Eval(ctx, "return 1", nil); err != nil {
			t.Fatal(err)
		}
		h.FlushScripts(t)
		if _, err := s.EvalSha(ctx, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", nil); !errors.Is(err, driver.ErrNoScript) {
			t.Fatalf("EvalSha after FlushScripts: %v; want NOSCRIPT", err)
		}

		h.SetWrongType(t, key)
		if _, _, err := c2.Get(ctx, key); !errors.Is(err, driver.ErrWrongType) {
			t.Fatalf("Get of the planted key: %v; want WRONGTYPE", err)
		}
	})
}
