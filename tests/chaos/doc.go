// Package chaos is relock's fault-injection toolkit: a workload of workers
// contending for one lock, a history of what each of them saw, a checker
// that finds overlapping holders and stale fenced writes in that history
// and measures how fast the lock recovers from a fault, a TCP proxy that
// adds latency and resets connections, and the faults themselves.
//
// Its tests (TestFaults) run one scenario per fault against private Redis
// servers; they are heavy and skip under go test -short. The package is
// test tooling: no production code imports it.
//
// # What the checker checks
//
// Every successful Obtain gives a holder interval [Obtain returned,
// min(Release called, Done closed, ValidUntil)]: the time the holder may
// rely on the lock. No two intervals may overlap. A fenced resource accepts
// a write only when its fencing number is at least the highest it has
// seen; a rejected write is stale. The checker also counts dead-on-arrival
// locks (already past ValidUntil, or Done already closed, when Obtain
// returned), losses (Done closed before the holder called Release) and
// whether each was signalled before the next holder got the lock, the
// recovery after each fault (fault end → next holder), and the longest time
// the lock was free while some worker waited for it, outside fault windows
// and after the first acquisition.
package chaos
