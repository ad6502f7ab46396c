package goredis_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
)

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
