package goredisv8_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/go-redis/redis/v8"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredisv8"
)

// Wrap a go-redis v8 client you built, obtain a lock and release it. (It
// needs a Redis at 127.0.0.1:6379; internal/onmini runs the same on an
// in-process miniredis.)
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
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
	_, err = locker.TryObtain(ctx, "report:42", time.Second)
	fmt.Println("taken, not obtained again:", errors.Is(err, relock.ErrNotObtained))
	if err := lock.Release(ctx); err != nil {
		log.Fatal(err)
	}
}

// Open a relock.Client from a URL: it owns its go-redis client.
func Example_open() {
	locker, err := relock.Open("goredisv8", "redis://127.0.0.1:6379/0?client_name=reports")
	if err != nil {
		log.Fatal(err)
	}
	defer locker.Close()
}
