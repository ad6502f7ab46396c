package relock_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/internal/scripts"
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

// EvalSha answers the obtain script as a won lock, and every other script
// (release, refresh) as done. Scripts are told apart by their SHA1: obtain
// and release take the same number of arguments.
func (*cannedScripts) EvalSha(_ context.Context, sha1 string, _ []string, _ ...string) (any, error) {
	if sha1 == scripts.Obtain.SHA1 {
		return obtained, nil
	}
	return one, nil
}

func (c *cannedScripts) Eval(ctx context.Context, src string, keys []string, args ...string) (any, error) {
	if src == scripts.Obtain.Src {
		return obtained, nil
	}
	return one, nil
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

// BenchmarkObtainReleaseObserved is BenchmarkObtainRelease with an
// observer that does nothing: what building and passing the events adds.
// Compare with BenchmarkObtainRelease, which sets no observer and so
// builds no event at all.
func BenchmarkObtainReleaseObserved(b *testing.B) {
	var events int
	nop := relock.WithObserver(relock.ObserverFunc(func(relock.Event) { events++ }))
	b.Run("script-path-canned", func(b *testing.B) {
		c, err := relock.New(&cannedScripts{}, nop)
		if err != nil {
			b.Fatal(err)
		}
		benchObtainRelease(b, c, 1)
	})
	b.Run("watch-path-memdriver", func(b *testing.B) {
		c, err := relock.New(memdriver.New().Conn(), nop)
		if err != nil {
			b.Fatal(err)
		}
		benchObtainRelease(b, c, 64)
	})
	if events == 0 {
		b.Fatal("the observer saw no event")
	}
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
