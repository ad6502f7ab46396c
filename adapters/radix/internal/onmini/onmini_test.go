package onmini_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mediocregopher/radix/v4"
	"github.com/mediocregopher/radix/v4/trace"
	"go.uber.org/goleak"

	radixadapter "github.com/relock-go/relock/adapters/radix"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/minitest"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newPool returns a radix pool to addr, closed when t ends with every
// connection it dialed (radix's pool forgets one it dials while closing).
func newPool(t *testing.T, addr string) radix.Client {
	t.Helper()
	var (
		mu    sync.Mutex
		conns []radix.Conn
	)
	cfg := radix.PoolConfig{Dialer: radix.Dialer{CustomConn: func(ctx context.Context, network, addr string) (radix.Conn, error) {
		c, err := radix.Dial(ctx, network, addr)
		if err == nil {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
		return c, err
	}}}
	filled := make(chan struct{}) // the pool dials in the background
	cfg.Trace.InitCompleted = func(trace.PoolInitCompleted) { close(filled) }
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := cfg.New(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("radix pool to %s: %v", addr, err)
	}
	select {
	case <-filled:
	case <-ctx.Done():
	}
	t.Cleanup(func() {
		_ = p.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return p
}

// TestConformance runs the conformance suite on miniredis, through a pool
// (New) and through Open. Under -short only New runs (18 s each on this
// 2-core machine): Open builds the same pool from the URL, and
// TestDeadlineSilentServer/Open and TestOpenRules in adapters/radix cover
// Open under -short.
func TestConformance(t *testing.T) {
	t.Run("New", func(t *testing.T) {
		minitest.RunConformance(t, func(t *testing.T, b adaptertest.Backend) driver.Conn {
			return radixadapter.New(newPool(t, b.Addr))
		}, nil)
	})
	t.Run("Open", func(t *testing.T) {
		testredis.SkipShort(t, "the conformance suite a second time, through Open")
		minitest.RunConformance(t, func(t *testing.T, b adaptertest.Backend) driver.Conn {
			c, err := radixadapter.Driver{}.Open("redis://" + b.Addr)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}, nil)
	})
}
