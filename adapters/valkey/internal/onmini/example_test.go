package onmini_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/valkey-io/valkey-go"

	"github.com/relock-go/relock"
	valkeyadapter "github.com/relock-go/relock/adapters/valkey"
)

func Example() {
	// An in-memory server stands in for Redis or Valkey. miniredis lacks
	// CLIENT TRACKING, hence DisableCache, and answers CLUSTER SLOTS,
	// hence ForceSingleClient; neither is needed against a real server.
	srv, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	c, err := valkey.NewClient(valkey.ClientOption{
		InitAddress:       []string{srv.Addr()},
		DisableCache:      true,
		ForceSingleClient: true,
	})
	if err != nil {
		panic(err)
	}
	defer c.Close() // the adapter never closes a client it was given

	locks, err := relock.New(valkeyadapter.New(c))
	if err != nil {
		panic(err)
	}
	defer locks.Close()

	ctx := context.Background()
	lock, err := locks.Obtain(ctx, "report:42", 10*time.Second)
	if err != nil {
		panic(err)
	}
	fmt.Println("obtained", lock.Key())

	if _, err := locks.TryObtain(ctx, "report:42", time.Second); err != nil {
		fmt.Println("second owner:", err)
	}

	if err := lock.Release(ctx); err != nil {
		panic(err)
	}
	fmt.Println("released")
	// Output:
	// obtained report:42
	// second owner: relock: obtain "report:42": lock not obtained (held by another owner, 10s left)
	// released
}
