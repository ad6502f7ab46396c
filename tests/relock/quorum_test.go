package relock_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	goredislib "github.com/redis/go-redis/v9"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/adapters/redigo"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// quorum starts n private servers and returns them with driver
// connections to each, alternating go-redis and redigo to show that
// adapters mix.
func quorum(t *testing.T, n int) ([]*testredis.Server, func() []driver.Conn) {
	t.Helper()
	servers := make([]*testredis.Server, n)
	for i := range servers {
		servers[i] = testredis.Start(t)
	}
	conns := func() []driver.Conn {
		out := make([]driver.Conn, n)
		for i, s := range servers {
			if i%2 == 0 {
				rdb := goredislib.NewClient(&goredislib.Options{Addr: s.Addr(), DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
				t.Cleanup(func() { _ = rdb.Close() })
				out[i] = goredis.New(rdb)
				continue
			}
			addr := s.Addr()
			pool := &redis.Pool{MaxIdle: 8, DialContext: func(ctx context.Context) (redis.Conn, error) {
				return redis.DialContext(ctx, "tcp", addr, redis.DialConnectTimeout(200*time.Millisecond))
			}}
			t.Cleanup(func() { _ = pool.Close() })
			out[i] = redigo.New(pool)
		}
		return out
	}
	return servers, conns
}

func newQuorum(t *testing.T, conns []driver.Conn, opts ...relock.Option) *relock.Client {
	t.Helper()
	c, err := relock.NewQuorum(conns, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// holders counts the servers whose key holds token.
func holders(t *testing.T, servers []*testredis.Server, key, token string) int {
	t.Helper()
	n := 0
	for _, s := range servers {
		if v, err := s.Do("GET", key); err == nil && v == token {
			n++
		}
	}
	return n
}

func TestQuorumObtainRefreshRelease(t *testing.T) {
	servers, conns := quorum(t, 5)
	c := newQuorum(t, conns())
	ctx := context.Background()
	l, err := c.Obtain(ctx, "q:k", 10*time.Second)
	if err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	if n := holders(t, servers, "q:k", l.Token()); n < 3 {
		t.Fatalf("the lock is on %d of 5 masters, want a majority", n)
	}
	if err := l.Refresh(ctx, time.Minute); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if d, err := l.TTL(ctx); err != nil || d < 50*time.Second {
		t.Fatalf("TTL after Refresh(1m) = %v, %v", d, err)
	}
	other := newQuorum(t, conns())
	if _, err := other.TryObtain(ctx, "q:k", time.Second); !errors.Is(err, relock.ErrNotObtained) {
		t.Fatalf("a second owner's TryObtain = %v, want ErrNotObtained", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if n := holders(t, servers, "q:k", l.Token()); n != 0 {
		t.Fatalf("after Release the key holds our token on %d masters", n)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("a second Release = %v, want nil: the lock stays released", err)
	}
}

// TTL is how long a majority still holds the lock: two masters whose key
// runs out sooner (or answered a refresh late) do not shorten it.
func TestQuorumTTLIsTheMajoritys(t *testing.T) {
	servers, conns := quorum(t, 5)
	c := newQuorum(t, conns())
	ctx := context.Background()
	l, err := c.Obtain(ctx, "q:ttl", 30*time.Second)
	if err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	defer l.Release(ctx)
	// Obtain returns on a majority; the other masters answer shortly after.
	deadline := time.Now().Add(5 * time.Second)
	for holders(t, servers, "q:ttl", l.Token()) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("the lock reached only %d of 5 masters", holders(t, servers, "q:ttl", l.Token()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, s := range servers[:2] {
		if _, err := s.Do("PEXPIRE", "q:ttl", "2000"); err != nil {
			t.Fatal(err)
		}
	}
	if d, err := l.TTL(ctx); err != nil || d < 20*time.Second || d > 30*time.Second {
		t.Fatalf("TTL with 2 of 5 masters at 2s = %v, %v; want the majority's ~30s", d, err)
	}
	if _, err := servers[2].Do("PEXPIRE", "q:ttl", "3000"); err != nil {
		t.Fatal(err)
	}
	if d, err := l.TTL(ctx); err != nil || d > 3*time.Second || d < time.Second {
		t.Fatalf("TTL with 3 of 5 masters at 2-3s = %v, %v; want ~3s", d, err)
	}
	for _, s := range servers[3:] {
		if _, err := s.Do("PERSIST", "q:ttl"); err != nil {
			t.Fatal(err)
		}
	}
	if d, err := l.TTL(ctx); err != nil || d > 3*time.Second || d < time.Second {
		t.Fatalf("TTL with 2 masters persistent and 3 at 2-3s = %v, %v; want ~3s", d, err)
	}
	if _, err := servers[2].Do("PERSIST", "q:ttl"); err != nil {
		t.Fatal(err)
	}
	if d, err := l.TTL(ctx); err != nil || d != -1 {
		t.Fatalf("TTL with a majority of masters persistent = %v, %v; want -1 (no expiry)", d, err)
	}
}

func TestQuorumTwoOfFiveDown(t *testing.T) {
	servers, conns := quorum(t, 5)
	c := newQuorum(t, conns())
	servers[1].Stop()
	servers[4].Stop()
	ctx := context.Background()
	l, err := c.Obtain(ctx, "q:k", 10*time.Second)
	if err != nil {
		t.Fatalf("Obtain with 2 of 5 masters down: %v", err)
	}
	if n := holders(t, servers, "q:k", l.Token()); n != 3 {
		t.Fatalf("the lock is on %d masters, want the 3 live ones", n)
	}
	if err := l.Refresh(ctx, 10*time.Second); err != nil {
		t.Fatalf("Refresh with 2 of 5 down: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release with 2 of 5 down: %v", err)
	}
}

func TestQuorumThreeOfFiveDownLeavesNothing(t *testing.T) {
	servers, conns := quorum(t, 5)
	c := newQuorum(t, conns())
	for _, i := range []int{0, 2, 3} {
		servers[i].Stop()
	}
	_, err := c.Obtain(context.Background(), "q:k", 10*time.Second, relock.WithRetry(relock.NoRetry()))
	if err == nil {
		t.Fatal("Obtain with 3 of 5 masters down succeeded")
	}
	if errors.Is(err, relock.ErrNotObtained) {
		t.Fatalf("Obtain with 3 of 5 down = %v: the masters failed, that is an error, not contention", err)
	}
	_ = c.Close() // waits for calls still running
	for _, i := range []int{1, 4} {
		if v, err := servers[i].Do("GET", "q:k"); err != nil || v != nil {
			t.Fatalf("live master %d holds %v (%v) after a failed quorum obtain", i, v, err)
		}
	}
}

func TestQuorumMinorityLeftBehindIsReleased(t *testing.T) {
	servers, conns := quorum(t, 5)
	c := newQuorum(t, conns())
	for _, i := range []int{0, 1, 2} {
		if _, err := servers[i].Do("SET", "q:k", "someone-else", "PX", "10000"); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.TryObtain(context.Background(), "q:k", 10*time.Second)
	if !errors.Is(err, relock.ErrNotObtained) {
		t.Fatalf("TryObtain with a majority held by another = %v, want ErrNotObtained", err)
	}
	_ = c.Close()
	for _, i := range []int{3, 4} {
		if v, _ := servers[i].Do("GET", "q:k"); v != nil {
			t.Fatalf("master %d holds %v after a lost vote", i, v)
		}
	}
}

func TestQuorumMutualExclusion(t *testing.T) {
	_, conns := quorum(t, 3)
	clients := []*relock.Client{newQuorum(t, conns()), newQuorum(t, conns())}
	var inside, most atomic.Int32
	var wg sync.WaitGroup
	for w := range 6 {
		c := clients[w%2]
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for range 10 {
				l, err := c.Obtain(ctx, "q:shared", 10*time.Second, relock.WithRetry(relock.ExponentialRetry(time.Millisecond, 10*time.Millisecond)))
				if err != nil {
					t.Errorf("Obtain: %v", err)
					return
				}
				if n := inside.Add(1); n > most.Load() {
					most.Store(n)
				}
				time.Sleep(time.Millisecond)
				inside.Add(-1)
				if err := l.Release(ctx); err != nil {
					t.Errorf("Release: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Fatalf("%d holders at once", most.Load())
	}
}

func TestQuorumHonoursContext(t *testing.T) {
	servers, conns := quorum(t, 3)
	holder := newQuorum(t, conns())
	if _, err := holder.Obtain(context.Background(), "q:k", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	c := newQuorum(t, conns())
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Obtain(ctx, "q:k", 10*time.Second)
	if !errors.Is(err, relock.ErrNotObtained) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Obtain whose context ended = %v", err)
	}
	_ = servers
}

// TestQuorumRestartRule shows the rule for masters without persistence: a
// master that restarts empty at once can let a second holder in; one whose
// restart is delayed past the TTL cannot.
func TestQuorumRestartRule(t *testing.T) {
	servers, conns := quorum(t, 3)
	a := newQuorum(t, conns())
	b := newQuorum(t, conns())
	ctx := context.Background()

	// Immediate restart: the danger the rule prevents.
	la, err := a.Obtain(ctx, "q:now", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	servers[0].Restart() // empty: no persistence
	servers[1].Restart()
	// Obtain, not TryObtain: B's first try dials the restarted servers,
	// and under -race on a loaded 2-core machine those answers missed
	// the try (issue 19 item 4 load run: "held by another owner"), so B
	// tries again until it gets them, well within A's 5 s.
	lb, err := b.Obtain(ctxT(t, 3*time.Second), "q:now", 5*time.Second)
	if err != nil {
		t.Fatalf("after two masters restarted empty, B could not obtain (%v); the hazard this test documents did not appear", err)
	}
	if time.Now().After(la.ValidUntil()) {
		t.Fatal("A's lock had already expired: the test did not show an overlap")
	}
	t.Logf("immediate restart: A valid until %v and B holds the lock too (token %s): two holders", la.ValidUntil().Format(time.StampMilli), lb.Token())

	// Delayed restart: stay down past the TTL.
	ttl := 500 * time.Millisecond
	la, err = a.Obtain(ctx, "q:later", ttl)
	if err != nil {
		t.Fatal(err)
	}
	servers[0].Stop()
	servers[1].Stop()
	time.Sleep(ttl + 100*time.Millisecond)
	servers[0].Restart()
	servers[1].Restart()
	lb, err = b.Obtain(ctx, "q:later", ttl)
	if err != nil {
		t.Fatalf("after a delayed restart B could not obtain: %v", err)
	}
	if !la.ValidUntil().Before(lb.ObtainedAt()) {
		t.Fatalf("A valid until %v, B obtained at %v: they overlap", la.ValidUntil(), lb.ObtainedAt())
	}
	select {
	case <-la.Done():
	default:
		t.Fatal("A's lock has not signalled its end though its validity ran out")
	}
}

func TestNewQuorumRejects(t *testing.T) {
	_, conns := quorum(t, 3)
	cs := conns()
	if _, err := relock.NewQuorum(cs[:2]); !errors.Is(err, relock.ErrInvalidArgument) {
		t.Errorf("NewQuorum of 2 = %v, want ErrInvalidArgument", err)
	}
	if _, err := relock.NewQuorum([]driver.Conn{cs[0], nil, cs[2]}); !errors.Is(err, relock.ErrInvalidArgument) {
		t.Errorf("NewQuorum with a nil conn = %v, want ErrInvalidArgument", err)
	}
	c := newQuorum(t, cs)
	if _, err := c.Obtain(context.Background(), "q:k", time.Second, relock.WithFencing()); !errors.Is(err, relock.ErrUnsupported) {
		t.Errorf("WithFencing on a quorum = %v, want ErrUnsupported", err)
	}
	if _, err := c.Obtain(context.Background(), "q:k", time.Second, relock.WithReplicas(1, time.Second)); !errors.Is(err, relock.ErrUnsupported) {
		t.Errorf("WithReplicas on a quorum = %v, want ErrUnsupported", err)
	}
}
