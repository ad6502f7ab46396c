package valkeyadapter_test

import (
	"testing"

	"github.com/valkey-io/valkey-go"
	"go.uber.org/goleak"

	"github.com/relock-go/relock/internal/testkit/adaptertest"
)

// TestMain fails the run if a test leaves goroutines behind. Two of
// valkey's end by themselves after a test: the topology refresh that a
// failed cluster probe schedules (a random delay below a second), and the
// delayed close (5 s) of the connections a cluster refresh replaced.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valkey-io/valkey-go.(*call).DelayDo.func1"),
		goleak.IgnoreAnyFunction("github.com/valkey-io/valkey-go.(*clusterClient)._refresh.func2"),
	)
}

// newClient returns a valkey client for addr with edit applied to its
// options, closed when t ends.
func newClient(t testing.TB, addr string, edit func(*valkey.ClientOption)) valkey.Client {
	t.Helper()
	opt := valkey.ClientOption{InitAddress: []string{addr}}
	if edit != nil {
		edit(&opt)
	}
	c, err := valkey.NewClient(opt)
	if err != nil {
		t.Fatalf("valkey.NewClient(%s): %v", addr, err)
	}
	t.Cleanup(c.Close)
	return c
}

func channel() string { return adaptertest.Channel("valkey") }
