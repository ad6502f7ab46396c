package radixadapter_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mediocregopher/radix/v4"
	"github.com/mediocregopher/radix/v4/trace"
	"go.uber.org/goleak"

	"github.com/relock-go/relock"
	radixadapter "github.com/relock-go/relock/adapters/radix"
	"github.com/relock-go/relock/conformance"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/failover"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newPool returns a radix pool to addr as users build it (radix's defaults,
// periodic PING included), closed when t ends.
func newPool(t testing.TB, addr string) radix.Client {
	return newPoolConfig(t, addr, radix.PoolConfig{})
}

// newPoolConfig returns a pool to addr made by cfg, closed when t ends.
func newPoolConfig(t testing.TB, addr string, cfg radix.PoolConfig) radix.Client {
	t.Helper()
	cfg.Dialer = trackingDialer(t, cfg.Dialer)
	// Wait for the pool to dial all its connections, which it does in the
	// background: a goroutine count taken meanwhile would find them new.
	filled := make(chan struct{})
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
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// trackingDialer dials as d does, and closes every connection it made when
// t ends (after the clean-ups registered later, such as the client's
// Close): radix's pool forgets a connection that it dials while it closes,
// which goleak would find.
func trackingDialer(t testing.TB, d radix.Dialer) radix.Dialer {
	var (
		mu    sync.Mutex
		conns []radix.Conn
	)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return radix.Dialer{CustomConn: func(ctx context.Context, network, addr string) (radix.Conn, error) {
		c, err := d.Dial(ctx, network, addr)
		if err == nil {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
		return c, err
	}}
}

func TestConformance(t *testing.T) {
	adaptertest.RunConformance(t, func(t *testing.T, b adaptertest.Backend) driver.Conn {
		return radixadapter.New(newPool(t, b.Addr))
	})
}

func TestConformanceOpen(t *testing.T) {
	testredis.SkipShort(t, "runs the conformance suite on the shared server")
	h := adaptertest.ServerHarness(adaptertest.Backend{Addr: testredis.Addr(t)}, func(t *testing.T, b adaptertest.Backend) driver.Conn {
		c, err := radixadapter.Driver{}.Open("redis://" + b.Addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
	conformance.Run(t, h)
}

func TestConformanceCluster(t *testing.T) {
	failover.SkipShort(t)
	c := testredis.StartCluster(t)
	h := adaptertest.ClusterHarness(c, func(t *testing.T) driver.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cl, err := radix.ClusterConfig{PoolConfig: radix.PoolConfig{Dialer: trackingDialer(t, radix.Dialer{})}}.New(ctx, c.Addrs())
		if err != nil {
			t.Fatalf("radix cluster: %v", err)
		}
		t.Cleanup(func() { _ = cl.Close() })
		return radixadapter.New(cl)
	})
	t.Run("Hooks", func(t *testing.T) { adaptertest.CheckClusterHooks(t, c, h, "radix") })
	t.Run("Open URL", func(t *testing.T) { adaptertest.CheckOpenURL(t, radixadapter.Driver{}, adaptertest.ClusterURL(c)) })
	conformance.Run(t, h)
}

func TestSentinelOpenURL(t *testing.T) {
	failover.SkipShort(t)
	s := testredis.StartSentinel(t)
	adaptertest.CheckOpenURL(t, radixadapter.Driver{}, adaptertest.SentinelURL(s))
}

// TestNilClient checks that relock.New rejects a Conn over no client.
func TestNilClient(t *testing.T) {
	for name, conn := range map[string]*radixadapter.Conn{
		"nil":       radixadapter.New(nil),
		"typed nil": radixadapter.New((*radix.Cluster)(nil)),
	} {
		if _, err := relock.New(conn); !errors.Is(err, relock.ErrInvalidArgument) || !errors.Is(err, radixadapter.ErrNilClient) {
			t.Errorf("%s: relock.New = %v; want ErrInvalidArgument and ErrNilClient", name, err)
		}
		if _, _, err := conn.Get(context.Background(), "k"); !errors.Is(err, radixadapter.ErrNilClient) {
			t.Errorf("%s: Get = %v; want ErrNilClient", name, err)
		}
	}
}
