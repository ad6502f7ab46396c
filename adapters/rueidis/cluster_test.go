package rueidisadapter_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/relock-go/relock"
	rueidisadapter "github.com/relock-go/relock/adapters/rueidis"
	"github.com/relock-go/relock/conformance"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/failover"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// The tests of this file start a private Redis Cluster (six processes) or
// a Sentinel set-up (two servers, three sentinels), and wait for
// failovers: some seconds each. They skip in -short mode.

// newClusterClient returns a rueidis client seeded with every node of c (it
// finds the cluster through CLUSTER SLOTS and builds a cluster client),
// closed when t ends. The client-side cache is off: relock never reads
// through it.
func newClusterClient(t *testing.T, c *testredis.Cluster) rueidis.Client {
	t.Helper()
	cl, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: c.Addrs(), DisableCache: true})
	if err != nil {
		t.Fatalf("rueidis.NewClient(%v): %v", c.Addrs(), err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestConformanceCluster(t *testing.T) {
	failover.SkipShort(t)
	c := testredis.StartCluster(t)
	h := adaptertest.ClusterHarness(c, func(t *testing.T) driver.Conn { return rueidisadapter.New(newClusterClient(t, c)) })
	t.Run("Hooks", func(t *testing.T) { adaptertest.CheckClusterHooks(t, c, h, "rueidis") })
	t.Run("Open URL", func(t *testing.T) { adaptertest.CheckOpenURL(t, rueidisadapter.Driver{}, adaptertest.ClusterURL(c)) })
	h.KnownFailures = map[string]string{
		// Seen once in CI (the first 3 of 100 messages published right
		// after Add never arrived, on this cluster only); not reproduced
		// or explained yet. Remove once it is.
		"Driver/Subscriber/NoLossInOrder": "rueidis cluster client lost the first messages after Add once, under load; under investigation",
	}
	conformance.Run(t, h)
}

// failoverLocker returns a relock.Client over cl, closed when t ends
// (before cl, whose clean-up was registered first).
func failoverLocker(t *testing.T, cl rueidis.Client) *relock.Client {
	t.Helper()
	lc, err := relock.New(rueidisadapter.New(cl))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.Close() })
	return lc
}

// TestClusterFailover observes what a graceful failover (CLUSTER FAILOVER)
// and a crash of a primary (a replica promoted after the node timeout) do
// to locks held through a rueidis cluster client, and how long Obtain and
// Release fail on the slot meanwhile. It asserts only that they work again
// within 20 s; the fate of the locks is logged.
func TestClusterFailover(t *testing.T) {
	failover.SkipShort(t)
	t.Parallel() // mostly waiting for failovers
	c := testredis.StartCluster(t)
	cl := newClusterClient(t, c)
	lc := failoverLocker(t, cl)
	ctx := context.Background()

	t.Run("Graceful", func(t *testing.T) {
		tag := "{relock-graceful-" + failover.Rand() + "}"
		l, err := lc.Obtain(ctx, tag+":lock", time.Minute, relock.WithFencing())
		if err != nil {
			t.Fatal(err)
		}
		p := c.PrimaryFor(tag)
		r := c.ReplicasOf(p)[0]
		probe := failover.StartProbe(lc, func(i int) string { return fmt.Sprintf("%s:probe%d", tag, i) })
		time.Sleep(200 * time.Millisecond) // some good tries first
		start := time.Now()
		c.Failover(t, r)
		o := probe.Finish(start, 20*time.Second)
		t.Logf("CLUSTER FAILOVER (%s to %s): Obtain+Release on the slot: %v", p.Addr(), r.Addr(), o)
		if o.Failed > 0 && o.Recovered < 0 {
			t.Fatalf("Obtain+Release did not work again after CLUSTER FAILOVER")
		}
		failover.LogLockFate(t, "lock held across CLUSTER FAILOVER", rueidisadapter.New(cl).Get, l)
		failover.Reobtain(t, lc, l)
	})

	t.Run("Crash", func(t *testing.T) {
		tag := "{relock-crash-" + failover.Rand() + "}"
		l, err := lc.Obtain(ctx, tag+":lock", time.Minute, relock.WithFencing())
		if err != nil {
			t.Fatal(err)
		}
		p := c.PrimaryFor(tag)
		probe := failover.StartProbe(lc, func(i int) string { return fmt.Sprintf("%s:probe%d", tag, i) })
		time.Sleep(200 * time.Millisecond)
		kill := time.Now()
		c.KillPrimary(t, p)
		t.Logf("the cluster was ok again %v after the kill", time.Since(kill).Round(time.Millisecond))
		o := probe.Finish(kill, 20*time.Second)
		t.Logf("crash of %s: Obtain+Release on the slot: %v", p.Addr(), o)
		if o.Recovered < 0 {
			t.Fatalf("Obtain+Release did not work again within 20 s of the promotion")
		}
		failover.LogLockFate(t, "lock held across the crash of its primary", rueidisadapter.New(cl).Get, l)
		failover.Reobtain(t, lc, l)
	})
}

// TestSentinelFailover: a lock client over a rueidis sentinel client works
// again after the sentinels promote the replica of a killed primary. What
// becomes of the lock held across the failover is logged, not asserted: it
// survives only if the replica had it when promoted.
func TestSentinelFailover(t *testing.T) {
	failover.SkipShort(t)
	t.Parallel() // mostly waiting for failovers
	s := testredis.StartSentinel(t)
	t.Run("Open URL", func(t *testing.T) { adaptertest.CheckOpenURL(t, rueidisadapter.Driver{}, adaptertest.SentinelURL(s)) })
	cl, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress: s.SentinelAddrs(),
		Sentinel:    rueidis.SentinelOption{MasterSet: s.MasterName()},
	})
	if err != nil {
		t.Fatalf("rueidis.NewClient through the sentinels: %v", err)
	}
	t.Cleanup(cl.Close)
	lc := failoverLocker(t, cl)
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
	failover.LogLockFate(t, "lock held across the sentinel failover", rueidisadapter.New(cl).Get, l)
	failover.Reobtain(t, lc, l)
}
