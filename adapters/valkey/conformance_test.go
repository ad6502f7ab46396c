package valkeyadapter_test

import (
	"testing"

	valkeyadapter "github.com/relock-go/relock/adapters/valkey"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
)

// newConn is the conformance suite's NewConn: a fresh valkey client with
// the library's defaults, client-side cache included, closed when the
// subtest ends (the suite closes only the Conn, which leaves it open).
func newConn(t *testing.T, b adaptertest.Backend) driver.Conn {
	return valkeyadapter.New(newClient(t, b.Addr, nil))
}

// TestConformance runs the suite on the shared server and on a private
// one with a replica; internal/onmini runs it on miniredis.
func TestConformance(t *testing.T) {
	adaptertest.RunConformanceKnown(t, newConn, adaptertest.Known{"redis": knownFailures, "private": knownFailures})
}

// knownFailures are the subtests that the rueidis adapter lists too, for
// the same reasons: valkey-go keeps rueidis's pipe code (issue 21).
var knownFailures = map[string]string{
	// A dedicated connection in its synchronous mode (pipe.syncDo) sets
	// the socket's deadline from the context's deadline, and ignores a
	// cancellation: WATCH cancelled on a server that never answers waits
	// for ConnWriteTimeout. Closing the connection at the cancellation
	// does not help: pipe.Close waits a second for its PING first.
	"Driver/Context/InFlight/Watch": "WATCH on a dedicated connection ignores a cancellation without a deadline (issue 21)",
	// The subscription's Close closes its connection, and pipe.Close
	// gives a silent peer one second (a timer) to answer a PING before it
	// drops the socket; Close waits for that, as it promises to wait for
	// every goroutine of the subscription.
	"Driver/Context/Deadline/Subscribe": "Subscription.Close after an Add left unanswered takes about 1 s (issue 21)",
	"Driver/Context/InFlight/Subscribe": "Subscription.Close after an Add left unanswered takes about 1 s (issue 21)",
	"Driver/Network/Silent/Subscribe":   "Subscription.Close after an Add left unanswered takes about 1 s (issue 21)",
}
