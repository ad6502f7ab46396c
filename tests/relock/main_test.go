package relock_test

import (
	"context"
	"testing"

	goredislib "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// quietLog drops go-redis's log lines ("failed to dial after 5 attempts"),
// which the outage tests cause by the dozen.
type quietLog struct{}

func (quietLog) Printf(context.Context, string, ...any) {}

// TestMain checks that no goroutine outlives the tests, as the root
// package's TestMain did for these tests before they moved here.
func TestMain(m *testing.M) {
	goredislib.SetLogger(quietLog{})
	goleak.VerifyTestMain(m)
}
