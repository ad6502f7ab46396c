package goredis_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/conformance"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testredis"
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

// clusterHarness is the conformance harness over a private cluster. Hooks
// that act on a whole server act on every node (each has its own script
// cache) or every primary (FLUSHALL, CLIENT PAUSE: replicas follow).
func clusterHarness(t *testing.T, c *testredis.Cluster) conformance.Harness {
	admin := newClusterClient(t, c)
	nodes, primaries := c.Nodes(), c.Primaries() // no failover during the suite
	onEach := func(t *testing.T, servers []*testredis.Server, args ...string) {
		t.Helper()
		for _, s := range servers {
			if _, err := s.Do(args...); err != nil {
				t.Fatalf("%v on %s: %v", args, s.Addr(), err)
			}
		}
	}
	return conformance.Harness{
		NewConn: func(t *testing.T) driver.Conn {
			return goredis.New(newClusterClient(t, c))
		},
		FlushScripts: func(t *testing.T) { onEach(t, nodes, "SCRIPT", "FLUSH") },
		SetWrongType: func(t *testing.T, key string) {
			if err := admin.HSet(context.Background(), key, "f", "v").Err(); err != nil {
				t.Fatalf("HSET %s: %v", key, err)
			}
		},
		Delete: func(t *testing.T, key string) {
			if err := admin.Del(context.Background(), key).Err(); err != nil {
				t.Fatalf("DEL %s: %v", key, err)
			}
		},
		FlushAll: func(t *testing.T) { onEach(t, primaries, "FLUSHALL") },
		PauseWrites: func(t *testing.T, d time.Duration) {
			ms := (d + time.Millisecond - 1) / time.Millisecond
			onEach(t, primaries, "CLIENT", "PAUSE", strconv.FormatInt(int64(ms), 10), "WRITE")
		},
		// Replicas stays 0: a cluster client cannot send a script and
		// WAIT on one connection, so EvalWait fails with ErrUnsupported.
	}
}

func TestConformanceCluster(t *testing.T) {
	skipShortCluster(t)
	c := testredis.StartCluster(t)
	h := clusterHarness(t, c)
	t.Run("Hooks", func(t *testing.T) { checkClusterHooks(t, c, h) })
	conformance.Run(t, h)
}

// checkClusterHooks checks the hooks that act on several nodes, through
// keys spread over every primary.
func checkClusterHooks(t *testing.T, c *testredis.Cluster, h conformance.Harness) {
	ctx := context.Background()
	conn := h.NewConn(t)
	defer conn.Close()
	s := conn.(driver.Scripter)

	// One key per primary.
	keys := map[string]string{} // primary -> key
	for i := 0; len(keys) < 3 && i < 1000; i++ {
		k := fmt.Sprintf("relock-goredis-hooks:%s:%d", clusterRand(), i)
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

func clusterRand() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
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

// outageProbe runs TryObtain then Release on fresh keys, from its own
// goroutine, again and again (each try bounded by a second, 20 ms apart),
// and records when tries fail: how long a fault keeps locks from working.
type outageProbe struct {
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	tries []probeTry
}

type probeTry struct {
	end time.Time
	err error
}

// startOutageProbe starts probing now, with the keys key(0), key(1)...
func startOutageProbe(lc *relock.Client, key func(i int) string) *outageProbe {
	p := &outageProbe{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			l, err := lc.TryObtain(ctx, key(i), 10*time.Second)
			if err == nil {
				if err = l.Release(ctx); err != nil {
					err = fmt.Errorf("release: %w", err)
				}
			}
			cancel()
			p.mu.Lock()
			p.tries = append(p.tries, probeTry{time.Now(), err})
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return p
}

// outage is what an outageProbe saw.
type outage struct {
	tries, failed int
	firstFail     time.Duration // when the first failed try ended, after the fault
	recovered     time.Duration // when the first good try after the last failed one ended, after the fault; -1: none
	errs          string        // the errors, counted
}

func (o outage) String() string {
	if o.failed == 0 {
		return fmt.Sprintf("no failed try of %d", o.tries)
	}
	rec := "still failing when the probe stopped"
	if o.recovered >= 0 {
		rec = fmt.Sprintf("working again %v after the fault", o.recovered.Round(time.Millisecond))
	}
	return fmt.Sprintf("%d of %d tries failed, the first %v after the fault; %s; errors: %s",
		o.failed, o.tries, o.firstFail.Round(time.Millisecond), rec, o.errs)
}

// finish waits, up to limit, for a good try that ended after now (the
// fault is over on the server's side), stops the probe and returns what it
// saw, with times measured from fault.
func (p *outageProbe) finish(fault time.Time, limit time.Duration) outage {
	mark := time.Now()
	deadline := mark.Add(limit)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		n := len(p.tries)
		ok := n > 0 && p.tries[n-1].err == nil && p.tries[n-1].end.After(mark)
		p.mu.Unlock()
		if ok {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(p.stop)
	<-p.done
	o := outage{tries: len(p.tries), recovered: -1}
	seen := map[string]int{}
	lastFail := -1
	for i, tr := range p.tries {
		if tr.err != nil {
			if o.failed == 0 {
				o.firstFail = tr.end.Sub(fault)
			}
			o.failed++
			seen[failoverErrText(tr.err)]++
			lastFail = i
		}
	}
	if lastFail+1 < len(p.tries) {
		o.recovered = p.tries[lastFail+1].end.Sub(fault)
	}
	o.errs = failoverErrs(seen)
	return o
}

// failoverErrText drops the varying parts (keys, ports) of an error.
func failoverErrText(err error) string {
	s := err.Error()
	if i := strings.Index(s, "127.0.0.1:"); i >= 0 {
		j := i + len("127.0.0.1:")
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		s = s[:i] + "127.0.0.1:P" + s[j:]
	}
	if i := strings.Index(s, `"`); i >= 0 {
		if j := strings.Index(s[i+1:], `"`); j >= 0 {
			s = s[:i] + "KEY" + s[i+j+2:]
		}
	}
	return s
}

func failoverErrs(seen map[string]int) string {
	if len(seen) == 0 {
		return "none"
	}
	var out []string
	for e, n := range seen {
		out = append(out, fmt.Sprintf("%dx %q", n, e))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// logLockFate records, with t.Logf, what became of l across a failover:
// what the key holds now (read through rdb), then what TTL and Release
// answer. It asserts nothing.
func logLockFate(t *testing.T, what string, rdb redis.UniversalClient, l *relock.Lock) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := rdb.Get(ctx, l.Key()).Result()
	switch {
	case errors.Is(err, redis.Nil):
		t.Logf("%s: the key is gone", what)
	case err != nil:
		t.Logf("%s: GET failed: %v", what, err)
	case v == l.Token():
		t.Logf("%s: the key still holds our token", what)
	default:
		t.Logf("%s: the key holds another token %q", what, v)
	}
	ttl, err := l.TTL(ctx)
	t.Logf("%s: Lock.TTL = %v, %v", what, ttl.Round(time.Millisecond), err)
	t.Logf("%s: Lock.Release = %v", what, l.Release(ctx))
}

// reobtain tries to obtain l's key again, with fencing, once l has been
// released or lost, and logs the result and the fencing numbers before and
// after the fault: a fencing counter lost with the primary starts again.
func reobtain(t *testing.T, lc *relock.Client, l *relock.Lock) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l2, err := lc.Obtain(ctx, l.Key(), time.Minute, relock.WithFencing(), relock.WithRetry(relock.NoRetry()))
	if err != nil {
		t.Logf("Obtain of the key again: %v", err)
		return
	}
	t.Logf("fencing number before the fault %d, after %d", l.Fence(), l2.Fence())
	if err := l2.Release(ctx); err != nil {
		t.Errorf("Release of the lock obtained again: %v", err)
	}
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
		tag := "{relock-graceful-" + clusterRand() + "}"
		l, err := lc.Obtain(ctx, tag+":lock", time.Minute, relock.WithFencing())
		if err != nil {
			t.Fatal(err)
		}
		p := c.PrimaryFor(tag)
		r := c.ReplicasOf(p)[0]
		probe := startOutageProbe(lc, func(i int) string { return fmt.Sprintf("%s:probe%d", tag, i) })
		time.Sleep(200 * time.Millisecond) // some good tries first
		start := time.Now()
		c.Failover(t, r)
		o := probe.finish(start, 20*time.Second)
		t.Logf("CLUSTER FAILOVER (%s to %s): Obtain+Release on the slot: %v", p.Addr(), r.Addr(), o)
		if o.failed > 0 && o.recovered < 0 {
			t.Fatalf("Obtain+Release did not work again after CLUSTER FAILOVER")
		}
		logLockFate(t, "lock held across CLUSTER FAILOVER", rdb, l)
		reobtain(t, lc, l)
	})

	t.Run("Crash", func(t *testing.T) {
		// The default client keeps its slot map until a MOVED reply or
		// ClusterStateReloadInterval (60 s) says otherwise; a dead
		// primary sends no MOVED. The other client reloads every second.
		fast := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ClusterStateReloadInterval: time.Second})
		t.Cleanup(func() { _ = fast.Close() })
		lcFast := failoverLocker(t, fast)

		tag := "{relock-crash-" + clusterRand() + "}"
		l, err := lcFast.Obtain(ctx, tag+":lock", time.Minute, relock.WithFencing())
		if err != nil {
			t.Fatal(err)
		}
		p := c.PrimaryFor(tag)
		probe := startOutageProbe(lc, func(i int) string { return fmt.Sprintf("%s:probe%d", tag, i) })
		probeFast := startOutageProbe(lcFast, func(i int) string { return fmt.Sprintf("%s:fast%d", tag, i) })
		time.Sleep(200 * time.Millisecond)
		kill := time.Now()
		c.KillPrimary(t, p)
		t.Logf("the cluster was ok again %v after the kill", time.Since(kill).Round(time.Millisecond))
		// Both probes ran while the cluster settled. The client that
		// reloads every second must recover; the default one is observed
		// for 5 s more (it recovers about 60 s after its last reload).
		oFast := probeFast.finish(kill, 20*time.Second)
		o := probe.finish(kill, 5*time.Second)
		t.Logf("crash of %s, default client: %v", p.Addr(), o)
		t.Logf("crash of %s, client with ClusterStateReloadInterval 1s: %v", p.Addr(), oFast)
		if oFast.recovered < 0 {
			t.Fatalf("Obtain+Release did not work again within 20 s of the promotion, even on a client that reloads its slot map every second")
		}
		logLockFate(t, "lock held across the crash of its primary", fast, l)
		reobtain(t, lcFast, l)
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
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    s.MasterName(),
		SentinelAddrs: s.SentinelAddrs(),
	})
	t.Cleanup(func() { _ = rdb.Close() })
	lc := failoverLocker(t, rdb)
	ctx := context.Background()

	key := "relock-sentinel:" + clusterRand()
	l, err := lc.Obtain(ctx, key, time.Minute, relock.WithFencing())
	if err != nil {
		t.Fatal(err)
	}
	old := s.Primary()
	probe := startOutageProbe(lc, func(i int) string { return fmt.Sprintf("%s:probe%d", key, i) })
	time.Sleep(200 * time.Millisecond)
	kill := time.Now()
	next := s.KillPrimaryAndWaitFailover(t)
	t.Logf("killed %s; the sentinels switched to %s %v after the kill", old.Addr(), next.Addr(), time.Since(kill).Round(time.Millisecond))
	o := probe.finish(kill, 20*time.Second)
	t.Logf("sentinel failover: Obtain+Release: %v", o)
	if o.failed > 0 && o.recovered < 0 {
		t.Fatalf("Obtain+Release did not work again within 20 s of the failover")
	}
	logLockFate(t, "lock held across the sentinel failover", rdb, l)
	reobtain(t, lc, l)
}
