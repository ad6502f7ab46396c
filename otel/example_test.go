package relockotel_test

import (
	"context"
	"fmt"
	"log"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/internal/testkit/memdriver"
	relockotel "github.com/relock-go/relock/otel"
)

func ExampleNewMetricsObserver() {
	// In a program, relockotel.NewMetricsObserver() with no options
	// records on the global MeterProvider that the OpenTelemetry setup
	// installed. Here a manual reader shows what is recorded.
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	obs, err := relockotel.NewMetricsObserver(relockotel.WithMeterProvider(mp))
	if err != nil {
		log.Fatal(err)
	}

	// In a program, an adapter's connection to Redis, e.g.
	// goredis.New(rdb); here an in-memory backend, so that the example runs
	// anywhere.
	conn := memdriver.New().Conn()

	locker, err := relock.New(conn, relock.WithObserver(obs))
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
	// relock.hold.duration{db.system.name=redis}: 1 recorded
	// relock.obtain.duration{db.system.name=redis,error.type=not_obtained,relock.contended=true}: 1 recorded
	// relock.obtain.duration{db.system.name=redis,relock.contended=false}: 1 recorded
	// relock.release.duration{db.system.name=redis}: 1 recorded
}
