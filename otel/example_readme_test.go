package relockotel_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/internal/testkit/memdriver"
	relockotel "github.com/relock-go/relock/otel"
)

// ExampleNewObserver_globalProviders is the OpenTelemetry snippet of
// docs/observability.md (the lines between the README markers; the main module's
// TestReadmeSnippets checks that they match): an observer on the global
// providers, which are no-ops until a program installs its own.
func ExampleNewObserver_globalProviders() {
	// In a program, conn is an adapter's connection to the Redis at
	// 127.0.0.1:6379, e.g. goredis.New(redis.NewClient(&redis.Options{Addr:
	// "127.0.0.1:6379"})). Here an in-memory backend, so that the example
	// runs anywhere.
	conn := memdriver.New().Conn()

	// README:begin
	obs, err := relockotel.NewObserver( // the global MeterProvider and TracerProvider
		relockotel.WithServer("127.0.0.1:6379"), // server.address, server.port
	)
	if err != nil {
		log.Fatal(err)
	}
	locker, err := relock.New(conn, relock.WithObserver(obs))
	// README:end
	if err != nil {
		log.Fatal(err)
	}
	defer locker.Close()
	ctx := context.Background()
	lock, err := locker.Obtain(ctx, "report:42", 30*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(lock.Release(ctx))
	// Output: <nil>
}
