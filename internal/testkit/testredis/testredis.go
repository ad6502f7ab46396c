// Package testredis finds the real Redis server that tests run against.
//
// Tests reach the server at $RELOCK_REDIS_ADDR (default 127.0.0.1:6379).
// When it cannot be reached they skip, unless RELOCK_REQUIRE_REDIS is set
// to a non-empty value other than 0, as CI does: then they fail.
package testredis

import (
	"net"
	"os"
	"testing"
	"time"
)

// Required reports whether real-Redis tests must fail instead of skip.
func Required() bool {
	v := os.Getenv("RELOCK_REQUIRE_REDIS")
	return v != "" && v != "0"
}

// Addr returns the host:port of the real Redis server, or skips (fails
// when Required) the test if nothing answers there.
func Addr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("RELOCK_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		if Required() {
			t.Fatalf("real Redis at %s is required (RELOCK_REQUIRE_REDIS is set) but unreachable: %v", addr, err)
		}
		t.Skipf("no Redis at %s (%v); set RELOCK_REDIS_ADDR, or RELOCK_REQUIRE_REDIS=1 to fail instead", addr, err)
	}
	_ = c.Close()
	return addr
}

// URL returns Addr as a redis:// URL.
func URL(t testing.TB) string {
	t.Helper()
	return "redis://" + Addr(t)
}
