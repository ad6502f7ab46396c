// Package testredis gives relock's tests, benchmarks and tools real Redis
// servers.
//
//   - The shared server: [Addr] and [URL] find the server that tests run
//     against, at $RELOCK_REDIS_ADDR (default 127.0.0.1:6379). When it
//     cannot be reached they skip the test, unless RELOCK_REQUIRE_REDIS is
//     set to a non-empty value other than 0, as CI does: then they fail it.
//     [SharedAddr] is the same look-up without a test.
//   - Private servers, for what must not happen to the shared one (FLUSHALL,
//     CLIENT PAUSE, crashes with [Server.Stop], restarts, stalls with
//     [Server.Suspend]): [Start] and [StartReplica] run redis-server
//     processes on free loopback ports that the test's clean-up stops;
//     [StartServer] does the same for a program without a testing.TB
//     (bench/), which stops them with [Server.Close].
//   - Deployments: [StartCluster] (three primaries, three replicas) and
//     [StartSentinel] (a primary, a replica, three sentinels), with the
//     faults a test injects into them (failovers, killed primaries).
//   - [Server.Do] and [Do], a minimal RESP client for set-up and faults,
//     and [Server.Monitor], which records what a server receives.
//
// Heavy set-ups skip under go test -short: StartCluster, StartSentinel and
// StartReplica call [SkipShort], so that the quick run stays quick without
// an edit in each test. A private server alone (Start) is cheap and runs.
// Without a redis-server (or, for clusters, redis-cli) binary the helpers
// skip, or fail when [Required].
package testredis

import (
	"fmt"
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

// SkipShort skips t under go test -short, saying that it is skipped
// because it does what (say, "starts a Redis Cluster"). Clusters,
// sentinels, replicas and failovers take seconds each and are left to the
// full run, which CI makes.
func SkipShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("%s: skipped under go test -short (the full run, go test ./..., has it)", what)
	}
}

// SharedAddr returns the host:port of the shared real Redis server
// ($RELOCK_REDIS_ADDR, default 127.0.0.1:6379), and an error when nothing
// answers a TCP dial there within a second.
func SharedAddr() (string, error) {
	addr := os.Getenv("RELOCK_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return addr, fmt.Errorf("testredis: no Redis at %s (%w); set RELOCK_REDIS_ADDR", addr, err)
	}
	_ = c.Close()
	return addr, nil
}

// Addr returns the host:port of the real Redis server, or skips (fails
// when Required) the test if nothing answers there.
func Addr(t testing.TB) string {
	t.Helper()
	addr, err := SharedAddr()
	if err != nil {
		skipOrFail(t, err)
	}
	return addr
}

// URL returns Addr as a redis:// URL.
func URL(t testing.TB) string {
	t.Helper()
	return "redis://" + Addr(t)
}
