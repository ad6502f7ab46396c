package goredisv8_test

import (
	"testing"

	"github.com/go-redis/redis/v8"

	"github.com/relock-go/relock/adapters/goredisv8"
	"github.com/relock-go/relock/conformance"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// The tests of this file start a private Redis Cluster (six processes) or
// a Sentinel set-up: some seconds each. They skip in -short mode.

func TestConformanceCluster(t *testing.T) {
	testredis.SkipShort(t, "starts a Redis Cluster")
	c := testredis.StartCluster(t)
	h := adaptertest.ClusterHarness(c, func(t *testing.T) driver.Conn {
		// go-redis v8 cannot read Redis 7's CLUSTER SLOTS by itself.
		rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ClusterSlots: goredisv8.ClusterSlots(&redis.Options{}, c.Addrs()...)})
		t.Cleanup(func() { _ = rdb.Close() })
		return goredisv8.New(rdb)
	})
	t.Run("Hooks", func(t *testing.T) { adaptertest.CheckClusterHooks(t, c, h, "goredisv8") })
	t.Run("Open URL", func(t *testing.T) { adaptertest.CheckOpenURL(t, goredisv8.Driver{}, adaptertest.ClusterURL(c)) })
	conformance.Run(t, h)
	t.Cleanup(func() { waitDialersGone(t) })
}

// TestSentinelOpen obtains and releases a lock through a failover client
// that Open built from a sentinel URL.
func TestSentinelOpen(t *testing.T) {
	testredis.SkipShort(t, "starts a Sentinel set-up")
	s := testredis.StartSentinel(t)
	adaptertest.CheckOpenURL(t, goredisv8.Driver{}, adaptertest.SentinelURL(s))
}
