package relock_test

import (
	"context"
	"fmt"
	"log"
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

// ExampleNewQuorum is the README's quorum snippet (the lines between the
// README markers; TestReadmeSnippets checks that they match): five
// independent masters, here in-memory ones, reached through a mix of
// adapters.
func ExampleNewQuorum() {
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
