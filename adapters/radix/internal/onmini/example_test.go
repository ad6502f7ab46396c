package onmini_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/mediocregopher/radix/v4"

	"github.com/relock-go/relock"
	radixadapter "github.com/relock-go/relock/adapters/radix"
)

func Example() {
	// An in-memory Redis for the example; use your server's address.
	m, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer m.Close()

	ctx := context.Background()
	pool, err := radix.PoolConfig{Size: 1}.New(ctx, "tcp", m.Addr())
	if err != nil {
		panic(err)
	}
	defer pool.Close() // the pool is ours: relock leaves it open

	locks, err := relock.New(radixadapter.New(pool))
	if err != nil {
		panic(err)
	}
	defer locks.Close()

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
