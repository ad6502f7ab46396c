package rueidisadapter_test

import (
	"context"
	"log"
	"time"

	"github.com/redis/rueidis"

	"github.com/relock-go/relock"
	rueidisadapter "github.com/relock-go/relock/adapters/rueidis"
)

// Example locks a report over a rueidis client to the Redis server at
// 127.0.0.1:6379. (It is compiled, not run; internal/onmini runs one on
// miniredis.)
func Example() {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{"127.0.0.1:6379"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close() // the adapter never closes a client it was given

	locks, err := relock.New(rueidisadapter.New(c))
	if err != nil {
		log.Fatal(err)
	}
	defer locks.Close()

	ctx := context.Background()
	lock, err := locks.Obtain(ctx, "report:42", 10*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	defer lock.Release(ctx)
	// ... build the report ...
}

// Example_open lets relock make and own the client, from a URL.
func Example_open() {
	locks, err := relock.Open("rueidis", "redis://127.0.0.1:6379/0")
	if err != nil {
		log.Fatal(err)
	}
	defer locks.Close() // closes the client too

	ctx := context.Background()
	lock, err := locks.Obtain(ctx, "report:42", 10*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	defer lock.Release(ctx)
}
