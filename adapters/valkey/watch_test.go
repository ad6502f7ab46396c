package valkeyadapter_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"

	valkeyadapter "github.com/relock-go/relock/adapters/valkey"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// TestWatchUnanswered: a Watch cancelled while WATCH waits for a paused
// server returns at once, and its connection, closed in the background,
// is not reused: with a pool of one pinned connection, the next Watch
// gets a fresh one and runs its transaction.
func TestWatchUnanswered(t *testing.T) {
	testredis.SkipShort(t, "stalls a private server for seconds")
	srv := testredis.Start(t)
	conn := valkeyadapter.New(newClient(t, srv.Addr(), func(o *valkey.ClientOption) { o.BlockingPoolSize = 1 }))
	defer conn.Close()
	key := "relock-valkey-test:watch-unanswered"
	// The pinned connection is made before the pause.
	if err := conn.Watch(context.Background(), []string{key}, func(driver.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Do("CLIENT", "PAUSE", "1500", "ALL"); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	err := conn.Watch(ctx, []string{key}, func(driver.Tx) error { return errors.New("fn ran") })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch on a paused server: %v; want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Watch returned %v after its start, its context cancelled after 200ms", d)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = conn.Watch(ctx, []string{key}, func(tx driver.Tx) error {
		if _, ok, err := tx.Get(ctx, key); ok || err != nil {
			return errors.Join(errors.New("Tx.Get of a missing key"), err)
		}
		_, err := tx.Exec(ctx, []string{"SET", key, "v", "PX", "10000"})
		return err
	})
	if err != nil {
		t.Fatalf("Watch after the pause: %v", err)
	}
	if v, ok, err := conn.Get(ctx, key); v != "v" || !ok || err != nil {
		t.Fatalf("Get after the transaction = %q, %v, %v", v, ok, err)
	}
}
