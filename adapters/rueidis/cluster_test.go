package rueidisadapter_test

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/relock-go/relock"
	rueidisadapter "github.com/relock-go/relock/adapters/rueidis"
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
}

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
			return panicSafeConn{rueidisadapter.New(newClusterClient(t, c))}
		},
		FlushScripts: func(t *testing.T) { onEach(t, nodes, "SCRIPT", "FLUSH") },
		SetWrongType: func(t *testing.T, key string) {
			cmd := admin.B().Hset().Key(key).FieldValue().FieldValue("f", "v").Build()
			if err := admin.Do(context.Background(), cmd).Error(); err != nil {
				t.Fatalf("HSET %s: %v", key, err)
			}
		},
		Delete: func(t *testing.T, key string) {
			if err := admin.Do(context.Background(), admin.B().Del().Key(key).Build()).Error(); err != nil {
				t.Fatalf("DEL %s: %v", key, err)
			}
		},
		FlushAll: func(t *testing.T) { onEach(t, primaries, "FLUSHALL") },
		PauseWrites: func(t *testing.T, d time.Duration) {
			ms := (d + time.Millisecond - 1) / time.Millisecond
			onEach(t, primaries, "CLIENT", "PAUSE", strconv.FormatInt(int64(ms), 10), "WRITE")
		},
		// The adapter sends the script and WAIT on a dedicated connection,
		// which a cluster client opens to the node of the script's keys:
		// each primary has one replica.
		Replicas: 1,
	}
}

// panicSafeConn is the adapter's Conn, every method and capability of it
// promoted, except that a panic inside a Watch transaction becomes the
// error of that call. A rueidis cluster client pins a Watch to the node of
// the first key, and its dedicated client panics ("cross slot command in
// Dedicated is prohibited") when a command in the transaction names a key
// of another slot, as the conformance suite's Driver/Watcher/Exec does with
// Tx.Get(k+":missing"). The panic would end the whole test binary and
// every subtest after it; recovered, it fails that subtest alone. rueidis
// panics before it sends anything, with no lock held (its mutex is
// released by a defer), so going on is safe.
type panicSafeConn struct {
	*rueidisadapter.Conn
}

func (c panicSafeConn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return c.Conn.Watch(ctx, keys, func(tx driver.Tx) error { return fn(panicSafeTx{tx}) })
}

type panicSafeTx struct {
	tx driver.Tx
}

func recovered(what string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("rueidis panicked in Tx.%s: %v", what, r)
	}
}

func (t panicSafeTx) Get(ctx context.Context, key string) (v string, ok bool, err error) {
	defer recovered("Get", &err)
	return t.tx.Get(ctx, key)
}

func (t panicSafeTx) Exec(ctx context.Context, cmds ...[]string) (replies []any, err error) {
	defer recovered("Exec", &err)
	return t.tx.Exec(ctx, cmds...)
}

func TestConformanceCluster(t *testing.T) {
	skipShortCluster(t)
	c := testredis.StartCluster(t)
	h := clusterHarness(t, c)
	t.Run("Hooks", func(t *testing.T) { checkClusterHooks(t, c, h) })
	conformance.Run(t, h)
}

// checkClusterHooks checks the hooks that act on several nodes, and WAIT,
// through keys spread over every primary.
func checkClusterHooks(t *testing.T, c *testredis.Cluster, h conformance.Harness) {
	ctx := context.Background()
	conn := h.NewConn(t)
	defer conn.Close()
	s := conn.(driver.Scripter)

	keys := map[string]string{} // primary -> key
	for i := 0; len(keys) < 3 && i < 1000; i++ {
		k := fmt.Sprintf("relock-rueidis-hooks:%s:%d", clusterRand(), i)
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

func clusterRand() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
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
// what the key holds now (read through cl), then what TTL and Release
// answer. It asserts nothing.
func logLockFate(t *testing.T, what string, cl rueidis.Client, l *relock.Lock) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := cl.Do(ctx, cl.B().Get().Key(l.Key()).Build()).ToString()
	switch {
	case rueidis.IsRedisNil(err):
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

// reobtain tries once to obtain l's key again, with fencing, and logs the
// result and the fencing numbers before and after the fault: a fencing
// counter lost with the primary starts again.
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
// to locks held through a rueidis cluster client, and how long Obtain and
// Release fail on the slot meanwhile. It asserts only that they work again
// within 20 s; the fate of the locks is logged.
func TestClusterFailover(t *testing.T) {
	skipShortCluster(t)
	t.Parallel() // mostly waiting for failovers
	c := testredis.StartCluster(t)
	cl := newClusterClient(t, c)
	lc := failoverLocker(t, cl)
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
		logLockFate(t, "lock held across CLUSTER FAILOVER", cl, l)
		reobtain(t, lc, l)
	})

	t.Run("Crash", func(t *testing.T) {
		tag := "{relock-crash-" + clusterRand() + "}"
		l, err := lc.Obtain(ctx, tag+":lock", time.Minute, relock.WithFencing())
		if err != nil {
			t.Fatal(err)
		}
		p := c.PrimaryFor(tag)
		probe := startOutageProbe(lc, func(i int) string { return fmt.Sprintf("%s:probe%d", tag, i) })
		time.Sleep(200 * time.Millisecond)
		kill := time.Now()
		c.KillPrimary(t, p)
		t.Logf("the cluster was ok again %v after the kill", time.Since(kill).Round(time.Millisecond))
		o := probe.finish(kill, 20*time.Second)
		t.Logf("crash of %s: Obtain+Release on the slot: %v", p.Addr(), o)
		if o.recovered < 0 {
			t.Fatalf("Obtain+Release did not work again within 20 s of the promotion")
		}
		logLockFate(t, "lock held across the crash of its primary", cl, l)
		reobtain(t, lc, l)
	})
}

// TestSentinelFailover: a lock client over a rueidis sentinel client works
// again after the sentinels promote the replica of a killed primary. What
// becomes of the lock held across the failover is logged, not asserted: it
// survives only if the replica had it when promoted.
func TestSentinelFailover(t *testing.T) {
	skipShortCluster(t)
	t.Parallel() // mostly waiting for failovers
	s := testredis.StartSentinel(t)
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
	logLockFate(t, "lock held across the sentinel failover", cl, l)
	reobtain(t, lc, l)
}
