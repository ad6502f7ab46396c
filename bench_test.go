package relock_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/internal/testkit/memdriver"
)

// cannedScripts answers every script as a free lock would: obtain and
// release succeed. It measures relock's own cost on the script path, with
// no backend at all.
type cannedScripts struct{ plainConn }

var (
	obtained = []any{int64(1), int64(10000), int64(0), int64(0), int64(0)}
	one      = int64(1)
)

// SetNX finds the key free, as the first try of an uncontended lock does.
func (*cannedScripts) SetNX(context.Context, string, string, time.Duration) (bool, error) {
	return true, nil
}

func (*cannedScripts) EvalSha(_ context.Context, _ string, _ []string, args ...string) (any, error) {
	if len(args) == 5 { // obtain
		return obtained, nil
	}
	return one, nil
}

func (c *cannedScripts) Eval(ctx context.Context, _ string, keys []string, args ...string) (any, error) {
	return c.EvalSha(ctx, "", keys, args...)
}

func benchObtainRelease(b *testing.B, c *relock.Client, keys int) {
	ctx := context.Background()
	names := make([]string, keys)
	for i := range names {
		names[i] = "bench:" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l, err := c.TryObtain(ctx, names[i%keys], 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkObtainRelease measures one Obtain+Release pair of the core:
// allocations and CPU, without network.
func BenchmarkObtainRelease(b *testing.B) {
	b.Run("script-path-canned", func(b *testing.B) {
		c, err := relock.New(&cannedScripts{})
		if err != nil {
			b.Fatal(err)
		}
		benchObtainRelease(b, c, 1)
	})
	b.Run("watch-path-memdriver", func(b *testing.B) {
		c, err := relock.New(memdriver.New().Conn())
		if err != nil {
			b.Fatal(err)
		}
		benchObtainRelease(b, c, 64)
	})
}

// BenchmarkObtainReleaseParallel is the same from GOMAXPROCS goroutines,
// on keys of their own.
func BenchmarkObtainReleaseParallel(b *testing.B) {
	c, err := relock.New(memdriver.New().Conn())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	var n int64
	b.RunParallel(func(pb *testing.PB) {
		key := "bench:p:" + strconv.FormatInt(n, 10) + ":" + strconv.FormatInt(time.Now().UnixNano(), 10)
		for pb.Next() {
			l, err := c.TryObtain(ctx, key, 10*time.Second)
			if err != nil {
				b.Error(err)
				return
			}
			if err := l.Release(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
