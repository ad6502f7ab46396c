package onmini_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/minitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newConn wraps a client the test built and closes itself, as users do.
func newConn(t *testing.T, b adaptertest.Backend) driver.Conn {
	rdb := redis.NewClient(&redis.Options{Addr: b.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return goredis.New(rdb)
}

func TestConformance(t *testing.T) { minitest.RunConformance(t, newConn, nil) }

// TestReplicaWaiter: miniredis's WAIT answers 0 at once.
func TestReplicaWaiter(t *testing.T) {
	m := miniredis.RunT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	if err := rdb.ScriptLoad(ctx, adaptertest.SetScript).Err(); err != nil {
		t.Fatal(err)
	}
	adaptertest.CheckWaitZero(t, ctx, goredis.New(rdb), "relock-goredis-test:wait", nil)
}

// Wrap a go-redis client you built, obtain a lock and release it. The
// example runs against an in-process miniredis; point Addr at your server.
func Example() {
	srv, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close() // we built it, we close it: relock leaves it open

	locker, err := relock.New(goredis.New(rdb))
	if err != nil {
		log.Fatal(err)
	}
	defer locker.Close()

	ctx := context.Background()
	lock, err := locker.Obtain(ctx, "report:42", 10*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("obtained", lock.Key())

	_, err = locker.TryObtain(ctx, "report:42", time.Second)
	fmt.Println("taken by us, not obtained again:", errors.Is(err, relock.ErrNotObtained))

	if err := lock.Release(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("released")
	// Output:
	// obtained report:42
	// taken by us, not obtained again: true
	// released
}
