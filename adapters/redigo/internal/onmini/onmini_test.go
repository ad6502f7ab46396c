package onmini_test

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gomodule/redigo/redis"
	"go.uber.org/goleak"

	"github.com/relock-go/relock/adapters/redigo"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/minitest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newPool returns a pool dialing addr, closed when t ends.
func newPool(t testing.TB, addr string) *redis.Pool {
	t.Helper()
	p := &redis.Pool{
		MaxIdle: 8,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", addr)
		},
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// TestConformance runs the conformance suite on miniredis, whose clock the
// suite advances: the quick run's conformance (the adapter package runs it
// on real servers, skipped under -short).
func TestConformance(t *testing.T) {
	minitest.RunConformance(t, func(t *testing.T, b adaptertest.Backend) driver.Conn {
		return redigo.New(newPool(t, b.Addr))
	}, nil)
}

// TestExpiry checks that a key set by SetNX reads as missing once its TTL
// has passed on the server's clock.
func TestExpiry(t *testing.T) {
	m := miniredis.RunT(t)
	ctx := context.Background()
	c := redigo.New(newPool(t, m.Addr()))
	if set, err := c.SetNX(ctx, "k", "tok", 1500*time.Millisecond); err != nil || !set {
		t.Fatalf("SetNX = %v, %v", set, err)
	}
	m.FastForward(1500 * time.Millisecond)
	if _, ok, err := c.Get(ctx, "k"); err != nil || ok {
		t.Fatalf("Get after expiry: ok %v, err %v; want false, nil", ok, err)
	}
}

// TestWaitZero runs EvalShaWait and EvalWait against miniredis, whose WAIT
// answers 0 at once.
func TestWaitZero(t *testing.T) {
	m := miniredis.RunT(t)
	c := redigo.New(newPool(t, m.Addr()))
	adaptertest.MustDo(t, m.Addr(), "SCRIPT", "LOAD", adaptertest.SetScript)
	adaptertest.CheckWaitZero(t, context.Background(), c, "k", nil)
}
