// A program that uses relock as a user does: scripts/consumer-check copies
// it into a fresh module that gets the release candidate's modules from a
// file-based module proxy (no replace, no workspace), builds it and runs
// it against Redis. It obtains a lock through the go-redis adapter with
// the OpenTelemetry observer of github.com/relock-go/relock/otel, checks
// that a second Obtain fails while it is held, releases it, and prints what
// the observer counted; the script checks the last line.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"runtime/debug"
	"time"

	"github.com/redis/go-redis/v9"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	relockotel "github.com/relock-go/relock/otel"
)

func main() {
	addr := os.Getenv("RELOCK_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	obs, err := relockotel.NewMetricsObserver(relockotel.WithMeterProvider(mp))
	if err != nil {
		log.Fatal(err)
	}

	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	defer rdb.Close()
	locker, err := relock.New(goredis.New(rdb), relock.WithObserver(obs))
	if err != nil {
		log.Fatal(err)
	}
	defer locker.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := fmt.Sprintf("relock-consumer-check:%d", os.Getpid())
	lock, err := locker.Obtain(ctx, key, 10*time.Second)
	if err != nil {
		log.Fatalf("obtain %s at %s: %v", key, addr, err)
	}
	if _, err := locker.TryObtain(ctx, key, 10*time.Second); !errors.Is(err, relock.ErrNotObtained) {
		log.Fatalf("a second obtain of a held lock: got %v, want relock.ErrNotObtained", err)
	}
	if err := lock.Release(ctx); err != nil {
		log.Fatalf("release: %v", err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		log.Fatal(err)
	}
	// Counted by the histograms: a failure has error.type.
	counts := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			h, ok := m.Data.(metricdata.Histogram[float64])
			if !ok {
				continue
			}
			for _, dp := range h.DataPoints {
				_, failed := dp.Attributes.Value(relockotel.ErrorTypeAttr)
				switch {
				case m.Name == "relock.obtain.duration" && failed:
					counts["relock.not_obtained"] += int64(dp.Count)
				case m.Name == "relock.obtain.duration":
					counts["relock.obtained"] += int64(dp.Count)
				case m.Name == "relock.hold.duration" && !failed:
					counts["relock.released"] += int64(dp.Count)
				}
			}
		}
	}
	fmt.Printf("consumer ok: relock %s obtained and released through goredis at %s; otel counted obtained=%d not_obtained=%d released=%d\n",
		relockVersion(), addr, counts["relock.obtained"], counts["relock.not_obtained"], counts["relock.released"])
}

// relockVersion is the version of github.com/relock-go/relock built into
// the program, which the script compares with the candidate's.
func relockVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/relock-go/relock" {
				return d.Version
			}
		}
	}
	return "(unknown)"
}
