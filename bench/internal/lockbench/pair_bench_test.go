package lockbench

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/relock-go/relock/internal/testkit/testredis"
)

// BenchmarkPair is one uncontended lock+unlock pair of every contender,
// sequential, on a private redis-server: the client-side CPU and
// allocations of a pair (go test -bench Pair -benchmem ./internal/lockbench).
// The context has a deadline, as the lockbench workers' do.
func BenchmarkPair(b *testing.B) {
	srv := testredis.Start(b)
	cfg := Config{Addr: srv.Addr(), TTL: 10 * time.Second, PoolSize: 4}
	for _, c := range Contenders() {
		if c.Library == "redsync" || c.Library == "rueidislock" {
			continue // peers with their own allocation profile; not the question here
		}
		b.Run(c.Name, func(b *testing.B) {
			s, err := c.Open(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			key := "pairbench:" + c.Name + ":" + strconv.FormatInt(time.Now().UnixNano(), 10)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				unlock, err := s.Lock(ctx, key)
				if err != nil {
					b.Fatal(err)
				}
				if err := unlock(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
