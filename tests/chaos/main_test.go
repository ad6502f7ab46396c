package chaos_test

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// leakOptions let go the one rueidis goroutine that outlives a client by
// design: the delayed close of a connection that failed to dial sleeps a
// moment and ends on its own.
var leakOptions = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
}

// quiet drops go-redis's log lines ("failed to dial after 5 attempts"),
// which the faults cause by the hundred.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{})
	goleak.VerifyTestMain(m, leakOptions...)
}

// waitDialersGone waits, up to 3 s, for go-redis's background dialers to
// end. A pool that failed to dial keeps a goroutine that sleeps a second
// between tries; once the pool is closed it ends at its next wake-up, which
// can be later than goleak's own retries look. The check stays strict: a
// dialer still running after 3 s is reported by goleak.
func waitDialersGone(t *testing.T) {
	deadline := time.Now().Add(3 * time.Second)
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if !bytes.Contains(buf[:n], []byte("pool.(*ConnPool).tryDial")) || time.Now().After(deadline) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
