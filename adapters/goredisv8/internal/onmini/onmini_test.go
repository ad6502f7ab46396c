package onmini_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-redis/redis/v8"
	"go.uber.org/goleak"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredisv8"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/minitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newConn(t *testing.T, b adaptertest.Backend) driver.Conn {
	rdb := redis.NewClient(&redis.Options{Addr: b.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return goredisv8.New(rdb)
}

func TestConformance(t *testing.T) { minitest.RunConformance(t, newConn, nil) }

// Wrap a go-redis v8 client you built, obtain a lock and release it, on
// an in-process miniredis; point Addr at your server.
func Example() {
	srv, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close() // we built it, we close it: relock leaves it open

	locker, err := relock.New(goredisv8.New(rdb))
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
