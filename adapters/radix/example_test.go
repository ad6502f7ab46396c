package radixadapter_test

import (
	"context"
	"fmt"
	"time"

	"github.com/mediocregopher/radix/v4"

	"github.com/relock-go/relock"
	radixadapter "github.com/relock-go/relock/adapters/radix"
)

// Example wraps a radix pool of your own (it needs a Redis server at
// 127.0.0.1:6379; the package internal/onmini runs the same on miniredis).
func Example() {
	ctx := context.Background()
	dialer := radix.Dialer{} // AuthUser, AuthPass, SelectDB, NetDialer for TLS...
	pool, err := radix.PoolConfig{Dialer: dialer, Size: 16}.New(ctx, "tcp", "127.0.0.1:6379")
	if err != nil {
		panic(err)
	}
	defer pool.Close() // the pool is ours: relock leaves it open

	locks, err := relock.New(radixadapter.New(pool, radixadapter.WithDialer(dialer)))
	if err != nil {
		panic(err)
	}
	defer locks.Close()

	lock, err := locks.Obtain(ctx, "report:daily", 30*time.Second)
	if err != nil {
		panic(err)
	}
	defer lock.Release(ctx)
	fmt.Println("obtained", lock.Key())
}
