package chaos_test

import (
	"testing"

	"go.uber.org/goleak"
)

// leakOptions let go the one rueidis goroutine that outlives a client by
// design: the delayed close of a connection that failed to dial sleeps a
// moment and ends on its own.
var leakOptions = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leakOptions...) }
