package redigo_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/redigo"
)

// Example wraps a redigo pool of your own. It is compiled, not run; the
// runnable one, on miniredis, is in internal/onmini.
func Example() {
	pool := &redis.Pool{
		MaxIdle: 16,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", "127.0.0.1:6379")
		},
	}
	defer pool.Close() // the pool is yours: relock leaves it open

	locks, err := relock.New(redigo.New(pool))
	if err != nil {
		panic(err)
	}
	defer locks.Close()

	ctx := context.Background()
	lock, err := locks.Obtain(ctx, "report:daily", 30*time.Second)
	if err != nil {
		panic(err)
	}
	defer lock.Release(ctx)
	fmt.Println("obtained", lock.Key())
}

// Example_open lets relock build and own the pool from a URL.
func Example_open() {
	locks, err := relock.Open("redigo", "redis://127.0.0.1:6379/0?pool_size=32")
	if err != nil {
		panic(err)
	}
	defer locks.Close()

	lock, err := locks.Obtain(context.Background(), "report:daily", 30*time.Second)
	if err != nil {
		panic(err)
	}
	defer lock.Release(context.Background())
}
