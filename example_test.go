package relock_test

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

// exampleRedis starts an embedded Redis so that the examples run anywhere;
// in a program, connect to your own server instead.
func exampleRedis() (*redis.Client, func()) {
	srv, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	return rdb, func() { _ = rdb.Close(); srv.Close() }
}

func ExampleClient_Obtain() {
	rdb, stop := exampleRedis()
	defer stop()

	locker, err := relock.New(goredis.New(rdb))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	lock, err := locker.Obtain(ctx, "report:42", 30*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("obtained", lock.Key())

	// ... do the work the lock protects ...

	if err := lock.Release(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("released")
	// Output:
	// obtained report:42
	// released
}

func ExampleClient_TryObtain() {
	rdb, stop := exampleRedis()
	defer stop()
	locker, _ := relock.New(goredis.New(rdb))
	ctx := context.Background()

	first, _ := locker.TryObtain(ctx, "nightly-job", time.Minute)
	defer first.Release(ctx)

	_, err := locker.TryObtain(ctx, "nightly-job", time.Minute)
	if errors.Is(err, relock.ErrNotObtained) {
		fmt.Println("another run holds the lock; skipping")
	}
	// Output: another run holds the lock; skipping
}

func ExampleClient_Obtain_giveUp() {
	rdb, stop := exampleRedis()
	defer stop()
	locker, _ := relock.New(goredis.New(rdb))
	holder, _ := locker.TryObtain(context.Background(), "k", time.Minute)
	defer holder.Release(context.Background())

	// A context deadline: the error says "not obtained" and "I gave up".
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := locker.Obtain(ctx, "k", time.Minute)
	fmt.Println(errors.Is(err, relock.ErrNotObtained), errors.Is(err, context.DeadlineExceeded))

	// A wait budget with a bounded retry: only "not obtained".
	_, err = locker.Obtain(context.Background(), "k", time.Minute,
		relock.WithMaxWait(50*time.Millisecond),
		relock.WithRetry(relock.LimitRetry(relock.ExponentialRetry(5*time.Millisecond, 20*time.Millisecond), 10)))
	fmt.Println(errors.Is(err, relock.ErrNotObtained), errors.Is(err, context.DeadlineExceeded))
	// Output:
	// true true
	// true false
}

func ExampleLock_Refresh() {
	rdb, stop := exampleRedis()
	defer stop()
	locker, _ := relock.New(goredis.New(rdb))
	ctx := context.Background()

	lock, _ := locker.Obtain(ctx, "long-task", 10*time.Second)
	defer lock.Release(ctx)

	// Extend the lease before it runs out; ErrNotHeld means it was lost.
	if err := lock.Refresh(ctx, time.Minute); errors.Is(err, relock.ErrNotHeld) {
		fmt.Println("lost the lock: stop working")
		return
	}
	ttl, _ := lock.TTL(ctx)
	fmt.Println(ttl > 50*time.Second)
	// Output: true
}

func ExampleLock_Release_notHeld() {
	rdb, stop := exampleRedis()
	defer stop()
	locker, _ := relock.New(goredis.New(rdb))
	ctx := context.Background()

	lock, _ := locker.Obtain(ctx, "k", time.Minute)
	_ = lock.Release(ctx)
	err := lock.Release(ctx) // a second release, or one after expiry
	fmt.Println(errors.Is(err, relock.ErrNotHeld))
	// Output: true
}

func ExampleOpen() {
	srv, _ := miniredis.Run()
	defer srv.Close()

	// The goredis adapter registered itself as "goredis" when imported.
	locker, err := relock.Open("goredis", "redis://"+srv.Addr()+"/0")
	if err != nil {
		log.Fatal(err)
	}
	defer locker.Close() // closes the client that Open made

	lock, err := locker.Obtain(context.Background(), "k", time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(lock.Token()), "hex digits of token")
	_ = lock.Release(context.Background())
	// Output: 32 hex digits of token
}
