package relock_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/alicebob/miniredis/v2"
	redigolib "github.com/gomodule/redigo/redis"
	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/adapters/redigo"
	rueidisadapter "github.com/relock-go/relock/adapters/rueidis"
	"github.com/relock-go/relock/driver"
)

// The examples of this file are snippets of README.md and docs/*.md: the
// lines between their README:begin and README:end markers are what they
// show, and TestReadmeSnippets checks that they match.

// Example_newQuorum: five independent masters, here in-memory ones, reached
// through a mix of adapters.
func Example_newQuorum() {
	var addrs [5]string
	for i := range addrs {
		srv, err := miniredis.Run()
		if err != nil {
			log.Fatal(err)
		}
		defer srv.Close()
		addrs[i] = srv.Addr()
	}
	rdb1 := redis.NewClient(&redis.Options{Addr: addrs[0]})
	rdb2 := redis.NewClient(&redis.Options{Addr: addrs[1]})
	pool3 := &redigolib.Pool{MaxIdle: 4, DialContext: func(ctx context.Context) (redigolib.Conn, error) {
		return redigolib.DialContext(ctx, "tcp", addrs[2])
	}}
	// miniredis has no CLIENT TRACKING (DisableCache) and answers CLUSTER
	// SLOTS (ForceSingleClient): neither is needed against a real server.
	c4, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addrs[3]}, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		log.Fatal(err)
	}
	rdb5 := redis.NewClient(&redis.Options{Addr: addrs[4]})
	defer func() { _, _, _, _ = rdb1.Close(), rdb2.Close(), pool3.Close(), rdb5.Close(); c4.Close() }()
	ctx := context.Background()

	// README:begin
	locker, err := relock.NewQuorum([]driver.Conn{
		goredis.New(rdb1), goredis.New(rdb2), redigo.New(pool3), // adapters may mix
		rueidisadapter.New(c4), goredis.New(rdb5),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer locker.Close()

	lock, err := locker.Obtain(ctx, "k", 10*time.Second) // same Client, same Lock API
	// README:end
	if err != nil {
		log.Fatal(err)
	}
	held := 0
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		if v, _ := c.Get(ctx, "k").Result(); v == lock.Token() {
			held++
		}
		_ = c.Close()
	}
	// Obtain returns once a majority holds the lock; a straggler may still
	// be on its way to the others.
	fmt.Println("held by a majority:", held >= 3)
	fmt.Println("release:", lock.Release(ctx))
	// Output:
	// held by a majority: true
	// release: <nil>
}

// Example_inspectAndAttach: metadata on a lock, Inspect from anyone, and
// Attach from another Client, as the README shows them.
func Example_inspectAndAttach() {
	rdb, stop := exampleRedis()
	defer stop()
	locker, err := relock.New(goredis.New(rdb))
	if err != nil {
		log.Fatal(err)
	}
	defer locker.Close()
	other, err := relock.New(goredis.New(rdb)) // another process, say
	if err != nil {
		log.Fatal(err)
	}
	defer other.Close()
	ctx := context.Background()

	// README:begin
	lock, err := locker.Obtain(ctx, "report:42", time.Minute,
		relock.WithMetadata("host=web-3 pid=4711 job=nightly"))
	if err != nil {
		log.Fatal(err)
	}

	info, err := locker.Inspect(ctx, "report:42") // anyone, any process
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.Held, info.Metadata) // also info.Token, info.TTL, info.Fence, info.Waiters

	// Elsewhere (another request, another process): rebuild the Lock from
	// its key and token, then refresh or release it, owner check intact.
	same, err := other.Attach(ctx, "report:42", lock.Token())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(same.Release(ctx))
	// README:end

	// Output:
	// true host=web-3 pid=4711 job=nightly
	// <nil>
}

// Example_slogObserver: the README's slog observer. It logs JSON to
// stderr, which the example's output does not include.
func Example_slogObserver() {
	rdb, stop := exampleRedis()
	defer stop()
	conn := goredis.New(rdb)

	// README:begin
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil)) // logs Info and above
	locker, err := relock.New(conn, relock.WithObserver(relock.SlogObserver(logger,
		relock.SlogLevel(relock.EventObtained, slog.LevelInfo), // Debug by default
		relock.SlogLevel(relock.EventReleased, slog.LevelInfo),
	)))
	// README:end
	if err != nil {
		log.Fatal(err)
	}
	defer locker.Close()
	err = locker.Do(context.Background(), "report:42", time.Minute, func(context.Context) error { return nil })
	fmt.Println(err)
	// Output: <nil>
}

// Example_waitAndRun: the README's first recipe, Do waiting for the lock.
func Example_waitAndRun() {
	rdb, stop := exampleRedis()
	defer stop()
	locker, err := relock.New(goredis.New(rdb))
	if err != nil {
		log.Fatal(err)
	}
	defer locker.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// README:begin
	err = locker.Do(ctx, "report:42", 30*time.Second, func(ctx context.Context) error {
		fmt.Println("building the report") // pass ctx on: it ends if the lock is lost
		return nil
	}, relock.WithMaxWait(time.Minute)) // wait a minute at most (and no longer than ctx allows), then ErrNotObtained
	if err != nil {
		log.Fatal(err)
	}
	// README:end

	// Output: building the report
}

// Example_runOnce: the README's second recipe. Another replica holds the
// lock, so this one skips the job.
func Example_runOnce() {
	rdb, stop := exampleRedis()
	defer stop()
	locker, err := relock.New(goredis.New(rdb))
	if err != nil {
		log.Fatal(err)
	}
	defer locker.Close()
	ctx := context.Background()
	other, err := locker.Obtain(ctx, "nightly-cleanup", time.Minute) // another replica, say
	if err != nil {
		log.Fatal(err)
	}
	defer other.Release(ctx)
	cleanup := func(context.Context) error { fmt.Println("cleaning up"); return nil }

	// README:begin
	err = locker.DoOnce(ctx, "nightly-cleanup", 5*time.Minute, cleanup, relock.WithMinHold(time.Minute))
	switch {
	case errors.Is(err, relock.ErrNotObtained):
		fmt.Println("another replica runs it: skipped")
	case err != nil:
		log.Fatal(err) // Redis unavailable (ErrUnavailable: not a holder seen), or cleanup's own error
	}
	// README:end

	// Output: another replica runs it: skipped
}

// Example_fencedJob: the README's third recipe, a job whose writes carry
// the lock's fencing number (fencedStore is in edgekit_test.go).
func Example_fencedJob() {
	rdb, stop := exampleRedis()
	defer stop()
	locker, err := relock.New(goredis.New(rdb))
	if err != nil {
		log.Fatal(err)
	}
	defer locker.Close()
	ctx := context.Background()
	store := &fencedStore{}

	// README:begin
	lock, err := locker.Obtain(ctx, "account:9", 30*time.Second, relock.WithFencing(), relock.WithAutoRefresh())
	if err != nil {
		log.Fatal(err)
	}
	defer lock.Release(ctx)

	// Every write carries the fencing number; the store rejects a number
	// lower than the highest it has seen: a holder whose lock expired
	// during a pause is turned away.
	if err := store.Write(lock.Fence(), "balance=100"); err != nil {
		log.Fatal(err)
	}
	select {
	case <-lock.Done(): // lost (lock.Err() says why): stop writing
	default:
		fmt.Println("written under fence", lock.Fence() > 0)
	}
	// README:end

	// Output: written under fence true
}
