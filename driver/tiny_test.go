package driver_test

import (
	"testing"

	"github.com/relock-go/relock/conformance"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// TestTinyConformance runs the conformance suite on the smallest driver of
// Example_smallestDriver against the real server: the proof docs/drivers.md
// points to. Addr and NewConnTo let the suite check, through its own
// proxies and silent server, what the driver itself can show.
func TestTinyConformance(t *testing.T) {
	testredis.SkipShort(t, "runs the conformance suite on a real server")
	addr := testredis.Addr(t)
	do := func(t *testing.T, args ...string) {
		t.Helper()
		if _, err := testredis.Do(addr, args...); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	conformance.Run(t, conformance.Harness{
		NewConn:      func(*testing.T) driver.Conn { return &tinyConn{addr: addr} },
		FlushScripts: func(t *testing.T) { do(t, "SCRIPT", "FLUSH") },
		SetWrongType: func(t *testing.T, key string) { do(t, "HSET", key, "f", "v") },
		Delete:       func(t *testing.T, key string) { do(t, "DEL", key) },
		Addr:         addr,
		NewConnTo:    func(_ *testing.T, to string) driver.Conn { return &tinyConn{addr: to} },
	})
}
