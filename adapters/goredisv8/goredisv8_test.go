package goredisv8_test

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/go-redis/redis/v8"
	"go.uber.org/goleak"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredisv8"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// TestMain fails the package when a test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// client returns a go-redis client to addr, closed when t ends.
func client(t *testing.T, addr string, opts ...func(*redis.Options)) *redis.Client {
	o := &redis.Options{Addr: addr}
	for _, f := range opts {
		f(o)
	}
	rdb := redis.NewClient(o)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// newConn is the conformance suite's NewConn: a client the test built and
// closes itself, so the suite's Close of the Conn must leave it open.
func newConn(t *testing.T, b adaptertest.Backend) driver.Conn {
	return goredisv8.New(client(t, b.Addr))
}

func TestConformance(t *testing.T) {
	adaptertest.RunConformance(t, newConn)
}

// TestConformanceGuarded runs the suite through a Conn whose calls all run
// in goroutines of their own, as those of a TLS or cluster client do.
func TestConformanceGuarded(t *testing.T) {
	adaptertest.RunConformance(t, func(t *testing.T, b adaptertest.Backend) driver.Conn {
		return goredisv8.Guarded(client(t, b.Addr))
	})
}

func TestGuardChoice(t *testing.T) {
	for _, tc := range []struct {
		name string
		rdb  redis.UniversalClient
		want bool
	}{
		{"client", redis.NewClient(&redis.Options{}), false},
		{"TLS client", redis.NewClient(&redis.Options{TLSConfig: &tls.Config{}}), true},
		{"cluster", redis.NewClusterClient(&redis.ClusterOptions{}), true},
		{"another kind", other{redis.NewClient(&redis.Options{})}, true},
	} {
		if got := goredisv8.IsGuarded(goredisv8.New(tc.rdb)); got != tc.want {
			t.Errorf("%s: guarded = %v, want %v", tc.name, got, tc.want)
		}
		_ = tc.rdb.Close()
	}
	c, err := goredisv8.Driver{}.Open("rediss://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if goredisv8.IsGuarded(c.(*goredisv8.Conn)) {
		t.Errorf("Open(rediss://...): guarded, but its dialer follows the context")
	}
	_ = c.Close()
}

func TestNilClient(t *testing.T) {
	for _, c := range []*goredisv8.Conn{goredisv8.New(nil), goredisv8.New((*redis.Client)(nil))} {
		if _, err := relock.New(c); !errors.Is(err, relock.ErrInvalidArgument) || !errors.Is(err, goredisv8.ErrNilClient) {
			t.Fatalf("relock.New over a nil client = %v", err)
		}
		if _, err := c.SetNX(context.Background(), "k", "v", time.Second); !errors.Is(err, goredisv8.ErrNilClient) {
			t.Fatalf("SetNX over a nil client = %v", err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestClosedConn(t *testing.T) {
	c := goredisv8.New(client(t, testredis.Addr(t)))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	if _, _, err := c.Get(ctx, "k"); !errors.Is(err, goredisv8.ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}
	if _, err := c.Subscribe(ctx, func(string, string) {}); !errors.Is(err, goredisv8.ErrClosed) {
		t.Fatalf("Subscribe after Close = %v", err)
	}
}

// other is a UniversalClient of a kind the adapter does not know.
type other struct{ *redis.Client }

// TestReplicaWaiterUnsupported: a client of unknown kind may send WAIT
// elsewhere, a cluster script without keys has no node: both fail before
// sending anything.
func TestReplicaWaiterUnsupported(t *testing.T) {
	ring := other{client(t, "127.0.0.1:1")}
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer cluster.Close()
	for _, tc := range []struct {
		c    *goredisv8.Conn
		keys []string
	}{{goredisv8.New(ring), []string{"k"}}, {goredisv8.New(cluster), nil}} {
		_, _, err := tc.c.EvalWait(context.Background(), "return 1", tc.keys, nil, 1, time.Second)
		if !errors.Is(err, errors.ErrUnsupported) || !errors.Is(err, relock.ErrUnsupported) {
			t.Errorf("EvalWait = %v, want ErrUnsupported", err)
		}
	}
}
