package relockotel_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	relockotel "github.com/relock-go/relock/otel"
)

// ExampleNewObserver_globalProviders is the OpenTelemetry snippet of
// docs/observability.md (the lines between the README markers; the main module's
// TestReadmeSnippets checks that they match): an observer on the global
// providers, which are no-ops until a program installs its own.
func ExampleNewObserver_globalProviders() {
	srv, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	conn := goredis.New(rdb)

	// README:begin
	obs, err := relockotel.NewObserver( // the global MeterProvider and TracerProvider
		relockotel.WithServer(rdb.Options().Addr), // server.address, server.port
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
