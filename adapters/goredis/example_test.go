package goredis_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
)

// Wrap a go-redis client you built, obtain a lock and release it. (A
// runnable copy, on miniredis, is in internal/onmini.)
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
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
}

// Build the client from a URL with relock.Open; the relock.Client owns it
// and closes it.
func Example_open() {
	locker, err := relock.Open("goredis", "redis://127.0.0.1:6379/0")
	if err != nil {
		log.Fatal(err)
	}
	defer locker.Close()
}
