package goredis_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/conformance"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/failover"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// The tests of this file start a private Redis Cluster (six processes) or
// a Sentinel set-up (two servers, three sentinels), and wait for
// failovers: some seconds each. They skip in -short mode.

func skipShortCluster(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a Redis Cluster or Sentinel and waits for failovers: skipped in -short mode")
	}
	t.Cleanup(func() { waitDialersGone(t) })
}

// waitDialersGone waits, up to 3 s, for go-redis's background dialers to
// end. A pool that failed to dial a dead node keeps a goroutine that
// retries every second; it ends at its next retry once the pool is closed,
// but goleak in TestMain would find it before.
func waitDialersGone(t *testing.T) {
	deadline := time.Now().Add(3 * time.Second)
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if !bytes.Contains(buf[:n], []byte("pool.(*ConnPool).tryDial")) {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("a go-redis dialer goroutine is still running 3 s after the clients closed")
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// newClusterClient returns a go-redis cluster client seeded with every node
// of c, closed when t ends.
func newClusterClient(t *testing.T, c *testredis.Cluster) *redis.ClusterClient {
	t.Helper()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func TestConformanceCluster(t *testing.T) {
	skipShortCluster(t)
	c := testredis.StartCluster(t)
	h := adaptertest.ClusterHarness(c, func(t *testing.T) driver.Conn { return goredis.New(newClusterClient(t, c)) })
	t.Run("Hooks", func(t *testing.T) { adaptertest.CheckClusterHooks(t, c, h, "goredis") })
	t.Run("Open URL", func(t *testing.T) { adaptertest.CheckOpenURL(t, goredis.Driver{}, adaptertest.ClusterURL(c)) })
	conformance.Run(t, h)
}

// failoverLocker returns a relock.Client over rdb, closed when t ends
// (before rdb, whose clean-up was registered first).
func failoverLocker(t *testing.T, rdb redis.UniversalClient) *relock.Client {
	t.Helper()
	lc, err := relock.New(goredis.New(rdb))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.Close() })
	return lc
}

// TestClusterFailover observes what a graceful failover (CLUSTER FAILOVER)
// and a crash of a primary (a replica promoted after the node timeout) do
// to locks held through go-redis cluster clients, and how long Obtain and
// Release fail on the slot meanwhile. It asserts only that they work again
// within 20 s (in the crash, on a client that reloads its slot map every
// second); the fate of the locks is logged.
func TestClusterFailover(t *testing.T) {
	skipShortCluster(t)
	t.Parallel() // mostly waiting for failovers
	c := testredis.StartCluster(t)
	rdb := newClusterClient(t, c)
	lc := failoverLocker(t, rdb)
	ctx := context.Background()

	t.Run("Graceful", func(t *testing.T) {
		tag := "{relock-graceful-" + failover.Rand() + "}"
		l, err := lc.Obtain(ctx, tag+":lock", time.Minute, relock.WithFencing())
		if err != nil {
			t.Fatal(err)
		}
		p := c.PrimaryFor(tag)
		r := c.ReplicasOf(p)[0]
		// A cluster client that sends nothing during the failover, so its
		// slot map goes stale: EvalWait must not run the script on the
		// demoted node, and must work again on the promoted one.
		stale := goredis.New(newClusterClient(t, c))
		waited := tag + ":waited"
		const set = "return redis.call('SET', KEYS[1], ARGV[1])"
		if v, acked, err := stale.EvalWait(ctx, set, []string{waited}, []string{"before"}, 1, 2*time.Second); v != "OK" || acked != 1 || err != nil {
			t.Fatalf("EvalWait for the primary's replica before the failover = %v, %d, %v; want OK, 1", v, acked, err)
		}
		probe := failover.StartProbe(lc, func(i int) string { return fmt.Sprintf("%s:probe%d", tag, i) })
		time.Sleep(200 * time.Millisecond) // some good tries first
		start := time.Now()
		c.Failover(t, r)
		o := probe.Finish(start, 20*time.Second)
		t.Logf("CLUSTER FAILOVER (%s to %s): Obtain+Release on the slot: %v", p.Addr(), r.Addr(), o)
		if o.Failed > 0 && o.Recovered < 0 {
			t.Fatalf("Obtain+Release did not work again after CLUSTER FAILOVER")
		}

		_, _, err = stale.EvalWait(ctx, set, []string{waited}, []string{"stale"}, 1, 2*time.Second)
		if err == nil || !strings.Contains(err.Error(), "MOVED") {
			t.Fatalf("EvalWait on a stale slot map = %v, want the MOVED redirection", err)
		}
		if v, _ := rdb.Get(ctx, waited).Result(); v != "before" {
			t.Fatalf("after a MOVED EvalWait the key holds %q, want %q: the script ran", v, "before")
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			v, acked, err := stale.EvalWait(ctx, set, []string{waited}, []string{"after"}, 1, 2*time.Second)
			if err == nil {
				if v != "OK" || acked != 1 {
					t.Fatalf("EvalWait on the promoted primary = %v, %d; want OK, 1 (the demoted node now replicates it)", v, acked)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("EvalWait still fails 10 s after the MOVED that asked for a new slot map: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		failover.LogLockFate(t, "lock held across CLUSTER FAILOVER", goredis.New(rdb).Get, l)
		failover.Reobtain(t, lc, l)
	})

	t.Run("Crash", func(t *testing.T) {
		// The default client keeps its slot map until a MOVED reply or
		// ClusterStateReloadInterval (60 s) says otherwise; a dead
		// primary sends no MOVED. The other client reloads every second.
		fast := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ClusterStateReloadInterval: time.Second})
		t.Cleanup(func() { _ = fast.Close() })
		lcFast := failoverLocker(t, fast)

		tag := "{relock-crash-" + failover.Rand() + "}"
		l, err := lcFast.Obtain(ctx, tag+":lock", time.Minute, relock.WithFencing())
		if err != nil {
			t.Fatal(err)
		}
		p := c.PrimaryFor(tag)
		probe := failover.StartProbe(lc, func(i int) string { return fmt.Sprintf("%s:probe%d", tag, i) })
		probeFast := failover.StartProbe(lcFast, func(i int) string { return fmt.Sprintf("%s:fast%d", tag, i) })
		time.Sleep(200 * time.Millisecond)
		kill := time.Now()
		c.KillPrimary(t, p)
		t.Logf("the cluster was ok again %v after the kill", time.Since(kill).Round(time.Millisecond))
		// Both probes ran while the cluster settled. The client that
		// reloads every second must recover; the default one is observed
		// for 5 s more (it recovers about 60 s after its last reload).
		oFast := probeFast.Finish(kill, 20*time.Second)
		o := probe.Finish(kill, 5*time.Second)
		t.Logf("crash of %s, default client: %v", p.Addr(), o)
		t.Logf("crash of %s, client with ClusterStateReloadInterval 1s: %v", p.Addr(), oFast)
		if oFast.Recovered < 0 {
			t.Fatalf("Obtain+Release did not work again within 20 s of the promotion, even on a client that reloads its slot map every second")
		}
		failover.LogLockFate(t, "lock held across the crash of its primary", goredis.New(fast).Get, l)
		failover.Reobtain(t, lcFast, l)
		c.Restart(t, p) // back as a replica; the dialers' retries succeed
	})
}

// TestSentinelFailover: a lock client over a go-redis failover client
// works again after the sentinels promote the replica of a killed primary.
// What becomes of the lock held across the failover is logged, not
// asserted: it survives only if the replica had it when promoted.
func TestSentinelFailover(t *testing.T) {
	skipShortCluster(t)
	t.Parallel() // mostly waiting for failovers
	s := testredis.StartSentinel(t)
	t.Run("Open URL", func(t *testing.T) { adaptertest.CheckOpenURL(t, goredis.Driver{}, adaptertest.SentinelURL(s)) })
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    s.MasterName(),
		SentinelAddrs: s.SentinelAddrs(),
	})
	t.Cleanup(func() { _ = rdb.Close() })
	lc := failoverLocker(t, rdb)
	ctx := context.Background()

	key := "relock-sentinel:" + failover.Rand()
	l, err := lc.Obtain(ctx, key, time.Minute, relock.WithFencing())
	if err != nil {
		t.Fatal(err)
	}
	old := s.Primary()
	probe := failover.StartProbe(lc, func(i int) string { return fmt.Sprintf("%s:probe%d", key, i) })
	time.Sleep(200 * time.Millisecond)
	kill := time.Now()
	next := s.KillPrimaryAndWaitFailover(t)
	t.Logf("killed %s; the sentinels switched to %s %v after the kill", old.Addr(), next.Addr(), time.Since(kill).Round(time.Millisecond))
	o := probe.Finish(kill, 20*time.Second)
	t.Logf("sentinel failover: Obtain+Release: %v", o)
	if o.Failed > 0 && o.Recovered < 0 {
		t.Fatalf("Obtain+Release did not work again within 20 s of the failover")
	}
	failover.LogLockFate(t, "lock held across the sentinel failover", goredis.New(rdb).Get, l)
	failover.Reobtain(t, lc, l)
}
