package onmini_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gomodule/redigo/redis"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/redigo"
)

// Example obtains a lock through a redigo pool, on an in-memory Redis.
func Example() {
	m, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer m.Close()

	pool := &redis.Pool{
		MaxIdle: 8,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", m.Addr())
		},
	}
	defer pool.Close() // the pool is ours: relock leaves it open

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
	fmt.Println("obtained", lock.Key())

	_, err = locks.TryObtain(ctx, "report:daily", 30*time.Second)
	fmt.Println("second try:", err)

	if err := lock.Release(ctx); err != nil {
		panic(err)
	}
	fmt.Println("released")
	// Output:
	// obtained report:daily
	// second try: relock: obtain "report:daily": lock not obtained (held by another owner, 30s left)
	// released
}
