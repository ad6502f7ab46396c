// Package onmini runs the valkey adapter on miniredis: the conformance
// suite and a runnable example. It is apart so that the adapter's own
// package imports no miniredis.
package onmini_test

import (
	"testing"

	"github.com/valkey-io/valkey-go"
	"go.uber.org/goleak"

	valkeyadapter "github.com/relock-go/relock/adapters/valkey"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/minitest"
)

// TestMain fails the run if a test leaves goroutines behind; valkey's
// delayed topology refresh after a failed cluster probe ends by itself.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/valkey-io/valkey-go.(*call).DelayDo.func1"))
}

// newConn makes a valkey client for miniredis, which lacks CLIENT
// TRACKING (DisableCache) and answers CLUSTER SLOTS (ForceSingleClient),
// closed when t ends.
func newConn(t *testing.T, b adaptertest.Backend) driver.Conn {
	c, err := valkey.NewClient(valkey.ClientOption{InitAddress: []string{b.Addr}, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		t.Fatalf("valkey.NewClient(%s): %v", b.Addr, err)
	}
	t.Cleanup(c.Close)
	return valkeyadapter.New(c)
}

func TestConformance(t *testing.T) { minitest.RunConformance(t, newConn, nil) }
