package adaptertest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// Bounds of [CheckClientDeadlines]: the relock calls get a context with a
// ClientDeadline deadline and must return within ClientLimit.
const (
	ClientDeadline = 500 * time.Millisecond
	ClientLimit    = ClientDeadline + 1500*time.Millisecond
)

// CheckClientDeadlines checks that relock's calls over conn (Obtain,
// TryObtain, Release, Refresh, TTL) return soon after their context's
// deadline while srv is stopped with SIGSTOP. conn must reach srv; it is
// closed (through the relock.Client) when the check ends. Each call runs n
// times, concurrently; the overruns are logged.
func CheckClientDeadlines(t *testing.T, srv *testredis.Server, conn driver.Conn, n int) {
	t.Helper()
	client, err := relock.New(conn)
	if err != nil {
		t.Fatalf("relock.New: %v", err)
	}
	defer func() {
		start := time.Now()
		_ = client.Close()
		t.Logf("relock.Client.Close took %v", time.Since(start).Round(time.Millisecond))
	}()
	prefix := Channel("client-deadline") // unique per run
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	held := make([]*relock.Lock, 3*n)
	for i := range held {
		if held[i], err = client.Obtain(ctx, fmt.Sprintf("%s:held:%d", prefix, i), time.Minute); err != nil {
			t.Fatalf("Obtain before the server stopped: %v", err)
		}
	}
	var next, fresh atomic.Int64
	lock := func() *relock.Lock { return held[next.Add(1)-1] }
	key := func() string { return fmt.Sprintf("%s:fresh:%d", prefix, fresh.Add(1)) }

	thaw := Freeze(t, srv)
	CheckDeadlines(t, ClientDeadline, ClientLimit, n,
		DeadlineCall{"relock Obtain", func(ctx context.Context) error {
			_, err := client.Obtain(ctx, key(), time.Minute)
			return err
		}},
		DeadlineCall{"relock TryObtain", func(ctx context.Context) error {
			_, err := client.TryObtain(ctx, key(), time.Minute)
			return err
		}},
		DeadlineCall{"relock Release", func(ctx context.Context) error { return lock().Release(ctx) }},
		DeadlineCall{"relock Refresh", func(ctx context.Context) error { return lock().Refresh(ctx, time.Minute) }},
		DeadlineCall{"relock TTL", func(ctx context.Context) error {
			_, err := lock().TTL(ctx)
			return err
		}},
	)
	thaw()
	// Give back what was obtained (the keys of this run are unique; the
	// TTLs bound them anyway).
	for _, l := range held {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = l.Release(ctx)
		cancel()
	}
}
