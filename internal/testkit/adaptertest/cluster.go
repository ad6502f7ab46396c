package adaptertest

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/relock-go/relock/conformance"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/failover"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// ClusterHarness is the conformance harness over cluster c, with conns from
// newConn. Hooks that act on a whole server act on every node (each has its
// own script cache) or every primary (FLUSHALL, CLIENT PAUSE: replicas
// follow); HSET and DEL go to the key's primary, PUBLISH to any node;
// StallReplicas puts every replica to sleep (DEBUG SLEEP, shorter than the
// cluster's node timeout, so no node is taken for failed). NewSilentConn
// is not given. Each primary has one
// replica, so Replicas is 1. The hooks assume no failover during the suite.
func ClusterHarness(c *testredis.Cluster, newConn func(t *testing.T) driver.Conn) conformance.Harness {
	nodes, primaries := c.Nodes(), c.Primaries()
	onEach := func(t *testing.T, servers []*testredis.Server, args ...string) {
		t.Helper()
		for _, s := range servers {
			if _, err := s.Do(args...); err != nil {
				t.Fatalf("%v on %s: %v", args, s.Addr(), err)
			}
		}
	}
	onKey := func(t *testing.T, key string, args ...string) {
		t.Helper()
		onEach(t, []*testredis.Server{c.PrimaryFor(key)}, args...)
	}
	return conformance.Harness{
		NewConn:      warmClusterConns(c, newConn),
		FlushScripts: func(t *testing.T) { onEach(t, nodes, "SCRIPT", "FLUSH") },
		SetWrongType: func(t *testing.T, key string) { onKey(t, key, "HSET", key, "f", "v") },
		Delete:       func(t *testing.T, key string) { onKey(t, key, "DEL", key) },
		// A cluster forwards PUBLISH to every node.
		Publish: func(t *testing.T, channel, payload string) {
			onEach(t, primaries[:1], "PUBLISH", channel, payload)
		},
		FlushAll: func(t *testing.T) { onEach(t, primaries, "FLUSHALL") },
		PauseWrites: func(t *testing.T, d time.Duration) {
			ms := (d + time.Millisecond - 1) / time.Millisecond
			onEach(t, primaries, "CLIENT", "PAUSE", strconv.FormatInt(int64(ms), 10), "WRITE")
		},
		StallReplicas: func(t *testing.T, d time.Duration) { stall(t, d, c.Replicas()...) },
		Replicas:      1,
	}
}

// warmClusterConns returns newConn whose connections have read the slot
// map and dialled every primary (a GET of a key on each) before the suite
// uses them. A cold cluster client makes several round trips (CLUSTER
// SLOTS, a dial per node) inside the first call: under -race on a loaded
// 2-core machine those took more than the suite's 100-300 ms TTLs, so
// that locks were dead on arrival ("TryObtain(k, 200ms): lock not
// obtained") or expired between two calls of a scenario (load run of
// issue 19 item 4, TestConformanceCluster on goredis). The suite tests
// locks, not a client's start.
func warmClusterConns(c *testredis.Cluster, newConn func(t *testing.T) driver.Conn) func(t *testing.T) driver.Conn {
	var keys []string
	seen := map[string]bool{}
	for i := 0; len(keys) < len(c.Primaries()) && i < 10000; i++ {
		k := "relock-warm:" + strconv.Itoa(i)
		if p := c.PrimaryFor(k).Addr(); !seen[p] {
			seen[p] = true
			keys = append(keys, k)
		}
	}
	return func(t *testing.T) driver.Conn {
		conn := newConn(t)
		if conn == nil {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, k := range keys {
			if _, _, err := conn.Get(ctx, k); err != nil {
				t.Logf("warming a cluster connection: GET %s: %v", k, err)
			}
		}
		return conn
	}
}

// CheckClusterHooks checks the hooks of a conformance harness over cluster c that
// act on several nodes (FlushScripts, FlushAll, PauseWrites), and
// EvalWait for h.Replicas, through keys spread over every primary. adapter
// names the caller in the keys.
func CheckClusterHooks(t *testing.T, c *testredis.Cluster, h conformance.Harness, adapter string) {
	t.Helper()
	ctx := context.Background()
	conn := h.NewConn(t)
	defer conn.Close()
	s := conn.(driver.Scripter)

	keys := map[string]string{} // primary -> key
	for i := 0; len(keys) < 3 && i < 1000; i++ {
		k := fmt.Sprintf("relock-%s-hooks:%s:%d", adapter, failover.Rand(), i)
		if p := c.PrimaryFor(k).Addr(); keys[p] == "" {
			keys[p] = k
		}
	}
	if len(keys) != 3 {
		t.Fatalf("found keys on %d primaries, want 3", len(keys))
	}
	const script = "return redis.call('SET', KEYS[1], ARGV[1])"
	sum := sha1.Sum([]byte(script))
	sha := hex.EncodeToString(sum[:])
	for _, k := range keys {
		if _, err := s.Eval(ctx, script, []string{k}, "v"); err != nil {
			t.Fatalf("Eval on %s: %v", k, err)
		}
		if _, err := s.EvalSha(ctx, sha, []string{k}, "v"); err != nil {
			t.Fatalf("EvalSha on %s after Eval: %v", k, err)
		}
	}
	h.FlushScripts(t)
	for _, k := range keys {
		if _, err := s.EvalSha(ctx, sha, []string{k}, "v"); !errors.Is(err, driver.ErrNoScript) {
			t.Fatalf("EvalSha on %s after FlushScripts: %v, want ErrNoScript", k, err)
		}
	}
	w := conn.(driver.ReplicaWaiter)
	for _, k := range keys {
		if v, acked, err := w.EvalWait(ctx, script, []string{k}, []string{"v"}, h.Replicas, time.Second); v != "OK" || acked != h.Replicas || err != nil {
			t.Fatalf("EvalWait on %s for %d replicas = %v, %d, %v", k, h.Replicas, v, acked, err)
		}
		if v, acked, err := w.EvalWait(ctx, script, []string{k}, []string{"v"}, h.Replicas+1, 100*time.Millisecond); v != "OK" || acked != h.Replicas || err != nil {
			t.Fatalf("EvalWait on %s for %d replicas = %v, %d, %v; want OK, %d", k, h.Replicas+1, v, acked, err, h.Replicas)
		}
	}
	h.FlushAll(t)
	for _, k := range keys {
		if _, ok, err := conn.Get(ctx, k); ok || err != nil {
			t.Fatalf("Get %s after FlushAll = %v, %v; want a missing key", k, ok, err)
		}
	}
	const d = 400 * time.Millisecond
	start := time.Now()
	h.PauseWrites(t, d)
	for _, k := range keys {
		if _, err := conn.SetNX(ctx, k, "v", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took < d*3/4 {
		t.Fatalf("writes on every primary during PauseWrites(%v) went through after %v", d, took)
	}
	for _, k := range keys {
		h.Delete(t, k)
	}
}
