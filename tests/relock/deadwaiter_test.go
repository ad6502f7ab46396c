package relock_test

// Issue 19.1: a waiter that died or cannot be reached holds a free lock back
// for a bounded time that does not grow with the lock's TTL. A release
// hands the lock over with a short claim (250 ms) that the waiter confirms;
// a queued waiter's lease lasts 500 ms. So a dead head waiter keeps the
// lock from the next for the claim, and dead waiters queued ahead keep it
// until their leases end: at most about 500 ms after they died, whatever
// the TTL (30 s here).

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/internal/scripts"
	"github.com/relock-go/relock/internal/testkit/testredis"
	"github.com/relock-go/relock/tests/chaos"
)

// deadWaiterBound is what the tests allow between the holder's release and
// the live waiter's lock: the longer of the claim (250 ms) and the lease
// (500 ms), plus room for a loaded machine. Before the fix it was the dead
// waiter's TTL (30 s).
const deadWaiterBound = time.Second

// chaosClient returns a Client of adapter over a new client of addr; the
// Client and then the client library's client close when the test ends
// (registered first, so after anything the test registers later).
func chaosClient(t *testing.T, adapter, addr string) *relock.Client {
	t.Helper()
	conn, closeConn, err := chaos.NewConn(adapter, addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := relock.New(conn)
	if err != nil {
		closeConn()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Close()
		closeConn()
	})
	return c
}

// waitWaiters waits until Inspect counts n live waiters on key, or more:
// under -race on a loaded 2-core machine the count went past n between
// two polls (38 seen while waiting for 30: issue 19 item 4 load run,
// TestManyDeadWaitersHoldAFreeLockBriefly/cut), and an exact match then
// never came. The tests' bounds on what follows stay as they are.
func waitWaiters(t *testing.T, c *relock.Client, key string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := c.Inspect(context.Background(), key)
		if err == nil && info.Waiters >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters did not queue on %q within 10 s (Inspect: %+v, %v)", n, key, info, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// freshKey returns a key name unique to the test.
func freshKey(t *testing.T, base string) string {
	return fmt.Sprintf("%s-%s-%d", base, strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()), time.Now().UnixNano())
}

// deadAhead queues dead waiters (on a client behind a proxy) ahead of a
// live one, on a lock held with a 30 s TTL; fault then cuts or partitions
// the proxy, and the holder releases 50 ms later. It returns how long after
// the release the live waiter got the lock.
func deadAhead(t *testing.T, srv *testredis.Server, adapter string, dead int, fault func(*chaos.Proxy), opts ...relock.Option) time.Duration {
	t.Helper()
	const ttl = 30 * time.Second
	px, err := chaos.NewProxy(srv.Addr(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	holder := chaosClient(t, adapter, srv.Addr())
	live := chaosClient(t, adapter, srv.Addr())
	doomed := chaosClient(t, adapter, px.Addr())
	t.Cleanup(func() { _ = px.Close() }) // before doomed closes
	key := freshKey(t, "deadahead")
	ctx := ctxT(t, 20*time.Second)
	a, err := holder.Obtain(ctx, key, ttl, opts...)
	if err != nil {
		t.Fatal(err)
	}
	dctx, cancelDead := context.WithCancel(ctx)
	defer cancelDead()
	deadRes := make([]<-chan asyncResult, dead)
	for i := range dead {
		deadRes[i] = obtainAsync(dctx, doomed, key, ttl, opts...)
		waitWaiters(t, holder, key, i+1)
	}
	got := obtainAsync(ctx, live, key, ttl, opts...)
	waitWaiters(t, holder, key, dead+1)

	fault(px)
	time.Sleep(50 * time.Millisecond)
	released := time.Now()
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	var d time.Duration
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatal(r.err)
		}
		d = r.at.Sub(released)
		if left, err := r.l.TTL(ctx); err != nil || left < ttl-5*time.Second {
			t.Errorf("the live waiter's lock: TTL %v, %v; want about %v", left, err, ttl)
		}
		if a.Fence() != 0 && r.l.Fence() <= a.Fence() {
			t.Errorf("the live waiter's fence %d is not above the holder's %d", r.l.Fence(), a.Fence())
		}
		if err := r.l.Release(ctx); err != nil {
			t.Errorf("the live waiter's release: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the live waiter did not get the lock within 10 s of the release (the dead waiter's TTL is %v)", ttl)
	}
	cancelDead()
	_ = px.Close()
	for _, ch := range deadRes {
		if r := <-ch; r.err == nil {
			t.Errorf("a waiter behind a cut or partitioned connection got the lock")
			_ = r.l.Release(context.Background())
		}
	}
	return d
}

func cutConns(px *chaos.Proxy) { _ = px.Close() }

func partition(px *chaos.Proxy) { px.Partition() }

// TestDeadHeadWaiterHoldsAFreeLockBriefly: TTL 30 s; the head waiter's
// connections are cut, or its client partitioned, 50 ms before the holder
// releases; the live waiter behind it gets the lock within
// deadWaiterBound, on every adapter; fenced with metadata too.
func TestDeadHeadWaiterHoldsAFreeLockBriefly(t *testing.T) {
	testredis.SkipShort(t, "starts a private Redis server")
	srv := testredis.Start(t)
	for _, adapter := range chaos.Adapters {
		for _, f := range []struct {
			name  string
			fault func(*chaos.Proxy)
			opts  []relock.Option
		}{
			{"cut", cutConns, nil},
			{"partition", partition, nil},
			{"cut, fenced with metadata", cutConns, []relock.Option{relock.WithFencing(), relock.WithMetadata("m")}},
		} {
			t.Run(adapter+"/"+f.name, func(t *testing.T) {
				d := deadAhead(t, srv, adapter, 1, f.fault, f.opts...)
				t.Logf("%s, head waiter %s: the live waiter got the lock %v after the release", adapter, f.name, d.Round(time.Millisecond))
				if d > deadWaiterBound {
					t.Fatalf("a dead head waiter kept a free lock for %v after the release; the bound is %v", d, deadWaiterBound)
				}
			})
		}
	}
}

// TestManyDeadWaitersHoldAFreeLockBriefly: 40 waiters of one client queue
// ahead of a live one, and the client's connections are cut (or it is
// partitioned) 50 ms before the release: the dead waiters' leases end
// within 500 ms of the fault, and the live waiter takes the lock then.
func TestManyDeadWaitersHoldAFreeLockBriefly(t *testing.T) {
	testredis.SkipShort(t, "starts a private Redis server")
	srv := testredis.Start(t)
	for _, f := range []struct {
		name  string
		fault func(*chaos.Proxy)
	}{{"cut", cutConns}, {"partition", partition}} {
		t.Run(f.name, func(t *testing.T) {
			d := deadAhead(t, srv, "goredis", 40, f.fault)
			t.Logf("40 dead waiters (%s): the live waiter got the lock %v after the release", f.name, d.Round(time.Millisecond))
			if d > deadWaiterBound {
				t.Fatalf("dead waiters kept a free lock for %v after the release; the bound is %v", d, deadWaiterBound)
			}
		})
	}
}

// TestWaiterCommandsPerSecond measures what waiting costs Redis: the
// script calls per queued waiter per second while a lock stays held (a
// renewal every 125 ms: 8).
func TestWaiterCommandsPerSecond(t *testing.T) {
	testredis.SkipShort(t, "starts a private Redis server")
	srv := testredis.Start(t)
	holder := chaosClient(t, "goredis", srv.Addr())
	waiters := chaosClient(t, "goredis", srv.Addr())
	key := freshKey(t, "cost")
	ctx := ctxT(t, 20*time.Second)
	a, err := holder.Obtain(ctx, key, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	wctx, cancel := context.WithCancel(ctx)
	var res []<-chan asyncResult
	for range n {
		res = append(res, obtainAsync(wctx, waiters, key, 30*time.Second))
	}
	waitWaiters(t, holder, key, n)
	time.Sleep(200 * time.Millisecond) // every waiter past its join
	before, start := evalCalls(t, srv), time.Now()
	time.Sleep(2 * time.Second)
	after, took := evalCalls(t, srv), time.Since(start)
	cancel()
	for _, ch := range res {
		<-ch
	}
	_ = a.Release(ctx)
	per := float64(after-before) / n / took.Seconds()
	t.Logf("%d queued waiters: %.1f script calls per waiter per second", n, per)
	if per > 10 {
		t.Fatalf("%.1f script calls per waiter per second; a waiter renews every 125 ms (8)", per)
	}
}

// evalCalls returns how many EVALSHA and EVAL calls srv has served.
func evalCalls(t *testing.T, srv *testredis.Server) int64 {
	t.Helper()
	r, err := srv.Do("INFO", "commandstats")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.(string)
	var total int64
	for _, line := range strings.Split(s, "\n") {
		for _, cmd := range []string{"cmdstat_evalsha:", "cmdstat_eval:"} {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), cmd); ok {
				calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
				n, err := strconv.ParseInt(calls, 10, 64)
				if err != nil {
					t.Fatalf("INFO commandstats: %q: %v", line, err)
				}
				total += n
			}
		}
	}
	return total
}

// slowConfirm delays the first run of the refresh script (a woken waiter's
// confirmation of its claim) by delay, so that the claim runs out first.
type slowConfirm struct {
	*goredis.Conn
	delay   time.Duration
	delayed atomic.Bool
}

func (c *slowConfirm) EvalSha(ctx context.Context, sha string, keys []string, args ...string) (any, error) {
	if sha == scripts.Refresh.SHA1 && !c.delayed.Swap(true) {
		time.Sleep(c.delay)
	}
	return c.Conn.EvalSha(ctx, sha, keys, args...)
}

// A woken waiter whose confirmation comes after its claim ran out: the
// lock it was given on the claim (before the confirmation answered) ends
// at the claim's end, lost, before the waiter behind takes the lock when
// the claim runs out. Nobody holds it at the same time as another.
func TestHandoverClaimRunsOutBeforeTheConfirmation(t *testing.T) {
	testredis.SkipShort(t, "starts a private Redis server")
	srv := testredis.Start(t)
	rdb := goredislib.NewClient(&goredislib.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	holder := chaosClient(t, "goredis", srv.Addr())
	next := chaosClient(t, "goredis", srv.Addr())
	late := newClient(t, &slowConfirm{Conn: goredis.New(rdb), delay: 400 * time.Millisecond})
	key := freshKey(t, "late")
	ctx := ctxT(t, 20*time.Second)
	const ttl = 5 * time.Second
	a, err := holder.Obtain(ctx, key, ttl)
	if err != nil {
		t.Fatal(err)
	}
	gotLate := obtainAsync(ctx, late, key, ttl)
	waitWaiters(t, holder, key, 1)
	gotNext := obtainAsync(ctx, next, key, ttl)
	waitWaiters(t, holder, key, 2)
	released := time.Now()
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	rl := <-gotLate
	if rl.err != nil {
		t.Fatal(rl.err)
	}
	if left := rl.l.ValidUntil().Sub(rl.at); left > 250*time.Millisecond {
		t.Fatalf("the late waiter's lock, given before its confirmation answered, is valid for %v: past its claim (250ms)", left)
	}
	r := <-gotNext
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Logf("the late waiter had the lock %v after the release, valid for %v; the waiter behind got it %v after the release",
		rl.at.Sub(released).Round(time.Millisecond), rl.l.ValidUntil().Sub(rl.at).Round(time.Millisecond), r.at.Sub(released).Round(time.Millisecond))
	if !rl.l.ValidUntil().Before(r.at) {
		t.Fatalf("the late waiter's lock is valid until %v, after the next one got it (%v)", rl.l.ValidUntil(), r.at)
	}
	select {
	case <-rl.l.Done():
	case <-time.After(time.Second):
		t.Fatal("the late waiter's lock was not done 1s after the next one got it")
	}
	if err := rl.l.Err(); !errors.Is(err, relock.ErrLost) {
		t.Fatalf("the late waiter's lock ended with %v, want ErrLost", err)
	}
	if d, err := r.l.TTL(ctx); err != nil || d < ttl-time.Second {
		t.Fatalf("its TTL: %v, %v; want about %v", d, err, ttl)
	}
	if err := r.l.Release(ctx); err != nil {
		t.Fatal(err)
	}
}
