package chaos_test

import (
	"context"
	"testing"

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
