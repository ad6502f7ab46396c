package relockotel_test

import (
	"context"
	"fmt"
	"log"
	"slices"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	relockotel "github.com/relock-go/relock/otel"
)

func ExampleNewObserver() {
	// In a program, relockotel.NewObserver() with no options records on
	// the global providers that the OpenTelemetry setup installed. Here a
	// manual reader shows what is recorded, and spans are dropped.
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	obs, err := relockotel.NewObserver(
		relockotel.WithMeterProvider(mp),
		relockotel.WithTracerProvider(noop.NewTracerProvider()),
	)
	if err != nil {
		log.Fatal(err)
	}

	// An embedded Redis, so that the example runs anywhere.
	srv, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()

	locker, err := relock.New(goredis.New(rdb), relock.WithObserver(obs))
	if err != nil {
		log.Fatal(err)
	}
	defer locker.Close()
	ctx := context.Background()
	lock, err := locker.Obtain(ctx, "report:42", 30*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := locker.TryObtain(ctx, "report:42", 30*time.Second); err == nil {
		log.Fatal("obtained a held lock")
	}
	if err := lock.Release(ctx); err != nil {
		log.Fatal(err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		log.Fatal(err)
	}
	var lines []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					lines = append(lines, fmt.Sprintf("%s{%s} = %d", m.Name, dp.Attributes.Encoded(attribute.DefaultEncoder()), dp.Value))
				}
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					lines = append(lines, fmt.Sprintf("%s{%s}: %d recorded", m.Name, dp.Attributes.Encoded(attribute.DefaultEncoder()), dp.Count))
				}
			}
		}
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// relock.contended{} = 1
	// relock.hold.duration{relock.end=released}: 1 recorded
	// relock.not_obtained{relock.reason=taken} = 1
	// relock.obtain.duration{relock.outcome=not_obtained}: 1 recorded
	// relock.obtain.duration{relock.outcome=obtained}: 1 recorded
	// relock.obtained{relock.handed_over=false} = 1
	// relock.released{} = 1
}
