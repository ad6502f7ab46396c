package relock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/memdriver"
)

// stallingConn lets obtains through and stalls every transaction (the
// refresh path) until its context ends: a backend that stopped answering,
// or a pool with no free connection.
type stallingConn struct {
	*memdriver.Conn
	stall chan struct{} // closed: stall from now on
}

func (c *stallingConn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	select {
	case <-c.stall:
		<-ctx.Done()
		return ctx.Err()
	default:
		return c.Conn.Watch(ctx, keys, fn)
	}
}

func TestAutoRefreshSignalsLossWhenRefreshesStall(t *testing.T) {
	conn := &stallingConn{Conn: memdriver.New().Conn(), stall: make(chan struct{})}
	c, err := relock.New(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, err := c.Obtain(context.Background(), "k", 150*time.Millisecond, relock.WithAutoRefresh())
	if err != nil {
		t.Fatal(err)
	}
	close(conn.stall)
	select {
	case <-l.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a lock whose refreshes stall never signalled its loss")
	}
	if now := time.Now(); now.Before(l.ValidUntil()) {
		t.Fatalf("loss signalled at %v, before the validity ran out at %v", now, l.ValidUntil())
	}
	if err := l.Err(); !errors.Is(err, relock.ErrLost) || errors.Is(err, relock.ErrNotHeld) {
		t.Fatalf("Err() = %v, want ErrLost by validity", err)
	}
}

func TestDoRejectsNilFunc(t *testing.T) {
	c, err := relock.New(memdriver.New().Conn())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Do(context.Background(), "k", time.Second, nil); !errors.Is(err, relock.ErrInvalidArgument) {
		t.Fatalf("Do(nil fn) = %v, want ErrInvalidArgument", err)
	}
}

func TestWithReplicasChecksArguments(t *testing.T) {
	c, err := relock.New(memdriver.New().Conn())
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []relock.Option{relock.WithReplicas(0, time.Second), relock.WithReplicas(1, 0)} {
		if _, err := c.Obtain(context.Background(), "k", time.Second, o); !errors.Is(err, relock.ErrInvalidArgument) {
			t.Errorf("bad WithReplicas = %v, want ErrInvalidArgument", err)
		}
	}
	if _, err := c.Obtain(context.Background(), "k", time.Second, relock.WithReplicas(1, time.Second)); !errors.Is(err, relock.ErrUnsupported) {
		t.Errorf("WithReplicas on a driver without ReplicaWaiter = %v, want ErrUnsupported", err)
	}
}

func TestObtainAfterCloseWithAutoRefresh(t *testing.T) {
	c, err := relock.New(memdriver.New().Conn())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if _, err := c.Obtain(context.Background(), "k", time.Second, relock.WithAutoRefresh()); !errors.Is(err, relock.ErrClosed) {
		t.Fatalf("Obtain after Close = %v, want ErrClosed", err)
	}
}

// TestReleaseAfterValidityNamesTheLoss: a Release after the validity ran
// out matches ErrNotHeld and ErrLost whether the key was still there to
// delete or already expired (the WATCH path used to report only
// ErrNotHeld when the key was gone).
func TestReleaseAfterValidityNamesTheLoss(t *testing.T) {
	for _, gone := range []bool{false, true} {
		store := memdriver.New()
		c, err := relock.New(store.Conn())
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		l, err := c.Obtain(ctx, "k", 60*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		<-l.Done()
		if gone {
			store.Del(l.RedisKey())
		}
		err = l.Release(ctx)
		if !errors.Is(err, relock.ErrNotHeld) || !errors.Is(err, relock.ErrLost) {
			t.Errorf("key gone %v: Release after the validity = %v, want ErrNotHeld and ErrLost", gone, err)
		}
		_ = c.Close()
	}
}
