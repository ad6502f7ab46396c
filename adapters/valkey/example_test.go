package valkeyadapter_test

import (
	"context"
	"log"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/relock-go/relock"
	valkeyadapter "github.com/relock-go/relock/adapters/valkey"
)

// Example wraps a valkey client that the caller built and closes. It
// needs a server, so it only compiles; internal/onmini runs the same on
// miniredis.
func Example() {
	c, err := valkey.NewClient(valkey.ClientOption{InitAddress: []string{"127.0.0.1:6379"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close() // the adapter never closes a client it was given

	locks, err := relock.New(valkeyadapter.New(c))
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
	// ... the work that needs the lock ...
}

// Example_open lets relock own the client: Open parses a URL and dials on
// the first call.
func Example_open() {
	locks, err := relock.Open("valkey", "redis://127.0.0.1:6379/0?client_name=reports")
	if err != nil {
		log.Fatal(err)
	}
	defer locks.Close()
}
