package relock_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/internal/testkit/memdriver"
)

// exampleRedis stands for your Redis: an in-memory backend, so that the
// examples run anywhere. In a program, wrap your client with its adapter
// instead, for example rdb.Conn() (see the adapters' examples).
func exampleRedis() (*memdriver.Store, func()) {
	return memdriver.New(), func() {}
}

func ExampleClient_Obtain() {
	rdb, stop := exampleRedis()
	defer stop()

	locker, err := relock.New(rdb.Conn())
	if err != nil {
		log.Fatal(err)
	}
	defer locker.Close()
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
	locker, _ := relock.New(rdb.Conn())
	defer locker.Close()
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
	locker, _ := relock.New(rdb.Conn())
	defer locker.Close()
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
	locker, _ := relock.New(rdb.Conn())
	defer locker.Close()
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
	locker, _ := relock.New(rdb.Conn())
	defer locker.Close()
	ctx := context.Background()

	lock, _ := locker.Obtain(ctx, "k", time.Minute)
	_ = lock.Release(ctx)
	fmt.Println(lock.Release(ctx)) // a second release: the lock stays released

	short, _ := locker.Obtain(ctx, "short", 50*time.Millisecond)
	time.Sleep(150 * time.Millisecond) // work outlived the lock's validity
	err := short.Release(ctx)
	fmt.Println(errors.Is(err, relock.ErrNotHeld), errors.Is(err, relock.ErrLost))
	// Output:
	// <nil>
	// true true
}

func ExampleClient_Do() {
	rdb, stop := exampleRedis()
	defer stop()
	locker, _ := relock.New(rdb.Conn())
	defer locker.Close()

	// Do obtains the lock, keeps it refreshed while fn runs, cancels fn's
	// context if the lock is lost, and releases it afterwards.
	err := locker.Do(context.Background(), "invoice:7", 10*time.Second, func(ctx context.Context) error {
		fmt.Println("working under the lock")
		return nil // pass ctx to every call, so work stops if the lock is lost
	})
	fmt.Println("err:", err)
	// Output:
	// working under the lock
	// err: <nil>
}

func ExampleLock_Done() {
	rdb, stop := exampleRedis()
	defer stop()
	locker, _ := relock.New(rdb.Conn())
	defer locker.Close()
	ctx := context.Background()

	lock, _ := locker.Obtain(ctx, "job", 10*time.Second, relock.WithAutoRefresh())
	select {
	case <-lock.Done(): // the lock was lost: stop working
		fmt.Println("lost:", lock.Err())
	default:
		fmt.Println("held until", lock.ValidUntil().After(time.Now()))
	}
	_ = lock.Release(ctx)
	<-lock.Done()
	fmt.Println(lock.Err())
	// Output:
	// held until true
	// relock: "job": lock released
}

// fencedStore stands for storage that remembers the highest fencing number
// it has seen and rejects writes carrying a lower one.
type fencedStore struct {
	highest int64
	value   string
}

var errStaleHolder = errors.New("store: write from a stale lock holder")

func (s *fencedStore) Write(fence int64, v string) error {
	if fence < s.highest {
		return errStaleHolder
	}
	s.highest, s.value = fence, v
	return nil
}

func ExampleWithFencing() {
	rdb, stop := exampleRedis()
	defer stop()
	locker, _ := relock.New(rdb.Conn())
	defer locker.Close()
	ctx := context.Background()
	store := &fencedStore{}

	// A first holder obtains the lock, then stalls (a GC pause, say) past
	// its TTL...
	slow, _ := locker.Obtain(ctx, "account:9", time.Second, relock.WithFencing())
	rdb.Del("account:9") // stands for the expiry during the stall

	// ...while a second holder takes the lock over and writes.
	fast, _ := locker.Obtain(ctx, "account:9", time.Second, relock.WithFencing())
	fmt.Println(store.Write(fast.Fence(), "from the new holder"))

	// The first holder wakes up and writes: the store turns it away.
	fmt.Println(store.Write(slow.Fence(), "from the stale holder"))
	fmt.Println(slow.Fence() < fast.Fence(), store.value)
	// Output:
	// <nil>
	// store: write from a stale lock holder
	// true from the new holder
}

func ExampleClient_Inspect() {
	rdb, stop := exampleRedis()
	defer stop()
	locker, _ := relock.New(rdb.Conn())
	defer locker.Close()
	ctx := context.Background()

	lock, err := locker.Obtain(ctx, "report:42", time.Minute,
		relock.WithMetadata("host=web-3 pid=4711 job=nightly"))
	if err != nil {
		log.Fatal(err)
	}
	defer lock.Release(ctx)

	// Anyone, in any process, can see who holds it and why.
	info, err := locker.Inspect(ctx, "report:42")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.Held, info.Token == lock.Token(), info.Metadata, info.TTL > 50*time.Second)
	// Output: true true host=web-3 pid=4711 job=nightly true
}

func ExampleClient_Attach() {
	rdb, stop := exampleRedis()
	defer stop()
	ctx := context.Background()

	// One request obtains the lock and passes its key and token on.
	first, _ := relock.New(rdb.Conn())
	defer first.Close()
	lock, err := first.Obtain(ctx, "upload:77", time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	key, token := lock.Key(), lock.Token()

	// Another request, or process, rebuilds the Lock and releases it.
	second, _ := relock.New(rdb.Conn())
	defer second.Close()
	same, err := second.Attach(ctx, key, token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(same.Release(ctx))

	// A wrong token is turned away: the owner check stays intact.
	_, err = second.Attach(ctx, key, "0123456789abcdef0123456789abcdef")
	fmt.Println(errors.Is(err, relock.ErrNotHeld))
	// Output:
	// <nil>
	// true
}

func ExampleWithKeyPrefix() {
	rdb, stop := exampleRedis()
	defer stop()
	locker, _ := relock.New(rdb.Conn(), relock.WithKeyPrefix("billing:"))
	defer locker.Close()
	ctx := context.Background()

	lock, err := locker.Obtain(ctx, "invoice:9", time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	defer lock.Release(ctx)
	// Key is the name given to Obtain, which Inspect and Attach on this
	// Client take back; RedisKey is the key in Redis.
	fmt.Println(lock.Key(), lock.RedisKey(), rdb.Exists("billing:invoice:9"))
	// Output: invoice:9 billing:invoice:9 true
}
