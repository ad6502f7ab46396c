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
func TestConformance(t *testing.T) { adaptertest.RunConformance(t, newConn) }
