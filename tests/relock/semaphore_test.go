package relock_test

// The counting semaphore (issue 20) on real Redis through every adapter,
// and on miniredis: never more than N permits whose validity overlaps,
// hand-overs that wake waiters at once and in order, dead holders and
// dead waiters, limit changes, loss, fencing, metadata, events, a key
// prefix, WithReplicas, a wrong type and a Redis Cluster.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/alicebob/miniredis/v2"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/internal/scripts"
	"github.com/relock-go/relock/internal/testkit/testredis"
	"github.com/relock-go/relock/tests/chaos"
)

// semBackend is a server and an adapter to reach it with.
type semBackend struct {
	name, adapter, addr string
	real                bool // a real Redis: keys expire by themselves
}

// semBackends are the shared Redis through every adapter of the fault
// suite, and miniredis through go-redis.
func semBackends(t *testing.T) []semBackend {
	t.Helper()
	var out []semBackend
	if addr, err := testredis.SharedAddr(); err == nil {
		for _, a := range chaos.Adapters {
			out = append(out, semBackend{name: "redis/" + a, adapter: a, addr: addr, real: true})
		}
	}
	out = append(out, semBackend{name: "miniredis/goredis", adapter: "goredis", addr: miniredis.RunT(t).Addr()})
	return out
}

// client returns a new Client of b, closed when the test ends.
func (b semBackend) client(t *testing.T, opts ...relock.Option) *relock.Client {
	t.Helper()
	return electClient(t, b.adapter, b.addr, opts...)
}

// do sends one command to b's server.
func (b semBackend) do(t *testing.T, args ...string) any {
	t.Helper()
	r, err := testredis.Do(b.addr, args...)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return r
}

// semName is a fresh semaphore name for t, removed (with its stored
// limit) when the test ends.
func semName(t *testing.T, b semBackend, base string) string {
	t.Helper()
	name := freshKey(t, base)
	t.Cleanup(func() {
		_, _ = testredis.Do(b.addr, "DEL", name, "{"+name+"}:relock:sl:"+name, "{"+name+"}:relock:sh:"+name)
	})
	return name
}

// forEachSem runs fn on every backend, or on the real ones only.
func forEachSem(t *testing.T, realOnly bool, fn func(t *testing.T, b semBackend)) {
	for _, b := range semBackends(t) {
		if realOnly && !b.real {
			continue
		}
		t.Run(b.name, func(t *testing.T) { fn(t, b) })
	}
}

// permitResult is what an Obtain in a goroutine gave, and when.
type permitResult struct {
	l   *relock.Lock
	err error
	at  time.Time
	id  int
}

func permitAsync(ctx context.Context, s *relock.Semaphore, ttl time.Duration, id int, out chan<- permitResult, opts ...relock.Option) {
	go func() {
		l, err := s.Obtain(ctx, ttl, opts...)
		out <- permitResult{l, err, time.Now(), id}
	}()
}

// waitWaiters waits until Inspect shows n live waiters.
func waitSemWaiters(t *testing.T, s *relock.Semaphore, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := s.Inspect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.Waiters == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiters: %d, want %d", info.Waiters, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustPermit(t *testing.T, s *relock.Semaphore, ttl time.Duration, opts ...relock.Option) *relock.Lock {
	t.Helper()
	l, err := s.TryObtain(context.Background(), ttl, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func releasePermit(t *testing.T, l *relock.Lock) {
	t.Helper()
	if err := l.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// maxOverlap returns the most intervals that share an instant.
func maxOverlap(iv [][2]time.Time) int {
	type ev struct {
		at  time.Time
		inc int
	}
	var evs []ev
	for _, i := range iv {
		evs = append(evs, ev{i[0], 1}, ev{i[1], -1})
	}
	// Ends before starts at the same instant: touching is not overlapping.
	sort.Slice(evs, func(a, b int) bool {
		if evs[a].at.Equal(evs[b].at) {
			return evs[a].inc < evs[b].inc
		}
		return evs[a].at.Before(evs[b].at)
	})
	n, most := 0, 0
	for _, e := range evs {
		n += e.inc
		most = max(most, n)
	}
	return most
}

// TestSemaphoreNeverMoreThanN: 12 workers over 3 clients contend for 3
// permits; each holds its permit a few ms. The history of holds, each
// from when Obtain returned to the earlier of its validity's end and the
// call of Release, never has more than 3 holds at one instant, and every
// worker got permits (all 3 were in use at once at some point).
func TestSemaphoreNeverMoreThanN(t *testing.T) {
	forEachSem(t, false, func(t *testing.T, b semBackend) {
		const n, workers, rounds = 3, 12, 15
		name := semName(t, b, "sem")
		clients := []*relock.Client{b.client(t), b.client(t), b.client(t)}
		var mu sync.Mutex
		var holds [][2]time.Time
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := clients[w%len(clients)].Semaphore(name, n)
				for range rounds {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					l, err := s.Obtain(ctx, 2*time.Second)
					cancel()
					if err != nil {
						errs <- err
						return
					}
					start := time.Now()
					time.Sleep(time.Duration(1+w%3) * time.Millisecond)
					end := time.Now()
					if v := l.ValidUntil(); v.Before(end) {
						end = v
					}
					mu.Lock()
					holds = append(holds, [2]time.Time{start, end})
					mu.Unlock()
					if err := l.Release(context.Background()); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if got := len(holds); got != workers*rounds {
			t.Fatalf("%d holds, want %d", got, workers*rounds)
		}
		most := maxOverlap(holds)
		if most > n {
			t.Fatalf("%d permits held at once, limit %d", most, n)
		}
		if most < 2 {
			t.Fatalf("at most %d permit held at once: the test shows nothing", most)
		}
		t.Logf("%d holds, at most %d at once", len(holds), most)
		if r := b.do(t, "EXISTS", name); r != int64(0) {
			t.Fatalf("semaphore key left behind: EXISTS %v", r)
		}
	})
}

// TestSemaphoreHandOver: with both permits taken (30 s TTLs), a waiter is
// woken by the release, by hand-over (the event says so), well before its
// 125 ms renewal would poll; then waiters queued one after another get
// permits in the order they queued.
func TestSemaphoreHandOver(t *testing.T) {
	forEachSem(t, false, func(t *testing.T, b semBackend) {
		name := semName(t, b, "sem")
		holder, waiter := b.client(t), b.client(t)
		s := holder.Semaphore(name, 2)
		a, c := mustPermit(t, s, 30*time.Second), mustPermit(t, s, 30*time.Second)
		var handed atomic.Bool
		obs := relock.ObserverFunc(func(e relock.Event) {
			if e.Kind == relock.EventObtained && e.HandedOver {
				handed.Store(true)
			}
		})
		var lat []time.Duration
		for range 5 {
			out := make(chan permitResult, 1)
			permitAsync(context.Background(), waiter.Semaphore(name, 2), 30*time.Second, 0, out, relock.WithObserver(obs), relock.WithMaxWait(10*time.Second))
			waitSemWaiters(t, s, 1)
			time.Sleep(20 * time.Millisecond) // mid-way between renewals, on average
			handed.Store(false)
			start := time.Now()
			releasePermit(t, a)
			r := <-out
			if r.err != nil {
				t.Fatal(r.err)
			}
			lat = append(lat, r.at.Sub(start))
			if !handed.Load() {
				t.Fatal("the permit did not come by hand-over")
			}
			a = r.l
		}
		slices.Sort(lat)
		t.Logf("release to obtain: %v", lat)
		bound := 60 * time.Millisecond
		if !b.real {
			bound = 100 * time.Millisecond // miniredis runs Lua far slower
		}
		if med := lat[len(lat)/2]; med > bound {
			t.Fatalf("median hand-over latency %v: a hand-over should not wait for the 125 ms renewal", med)
		}

		// FIFO: five waiters, each queued after the one before.
		out := make(chan permitResult, 5)
		for i := range 5 {
			permitAsync(context.Background(), waiter.Semaphore(name, 2), 30*time.Second, i, out, relock.WithMaxWait(20*time.Second))
			waitSemWaiters(t, s, i+1)
		}
		var order []int
		for range 5 {
			releasePermit(t, a)
			r := <-out
			if r.err != nil {
				t.Fatal(r.err)
			}
			order = append(order, r.id)
			a = r.l
		}
		if !slices.Equal(order, []int{0, 1, 2, 3, 4}) {
			t.Fatalf("waiters got permits in order %v, want the order they queued", order)
		}
		releasePermit(t, a)
		releasePermit(t, c)
	})
}

// TestSemaphoreDeadHolder: a holder that stops refreshing frees its
// permit when its TTL ends: a waiter gets it then, not before.
func TestSemaphoreDeadHolder(t *testing.T) {
	forEachSem(t, true, func(t *testing.T, b semBackend) {
		name := semName(t, b, "sem")
		s := b.client(t).Semaphore(name, 1)
		dead := mustPermit(t, s, 300*time.Millisecond)
		start := dead.ObtainedAt()
		l, err := b.client(t).Semaphore(name, 1).Obtain(context.Background(), time.Second, relock.WithMaxWait(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer releasePermit(t, l)
		t.Logf("taken %v after the dead holder's permit", l.ObtainedAt().Sub(start))
		if got := l.ObtainedAt().Sub(start); got < 280*time.Millisecond || got > 700*time.Millisecond {
			t.Fatalf("permit taken %v after the dead holder's, whose TTL was 300ms", got)
		}
	})
}

// TestSemaphoreDeadWaiter: a waiter that died while queued (its waiter
// key and queue entry written as a waiter writes them, then never renewed)
// ahead of a live one keeps a released permit from it for no more than
// its claim: the live one gets it within the lease and claim.
func TestSemaphoreDeadWaiter(t *testing.T) {
	forEachSem(t, true, func(t *testing.T, b semBackend) {
		name := semName(t, b, "sem")
		s := b.client(t).Semaphore(name, 1)
		h := mustPermit(t, s, 30*time.Second)
		q, w := "{"+name+"}:relock:q:"+name, "{"+name+"}:relock:w:"+name+":"
		b.do(t, "SET", w+"dead", "250", "PX", "500")
		b.do(t, "RPUSH", q, "dead")
		b.do(t, "PEXPIRE", q, "500")
		out := make(chan permitResult, 1)
		permitAsync(context.Background(), b.client(t).Semaphore(name, 1), 30*time.Second, 0, out, relock.WithMaxWait(5*time.Second))
		waitSemWaiters(t, s, 2)
		start := time.Now()
		releasePermit(t, h)
		r := <-out
		if r.err != nil {
			t.Fatal(r.err)
		}
		defer releasePermit(t, r.l)
		t.Logf("the live waiter got the permit %v after the release", r.at.Sub(start))
		if got := r.at.Sub(start); got > 900*time.Millisecond {
			t.Fatalf("the live waiter waited %v behind a dead one (lease 500ms, claim 250ms)", got)
		}
	})
}

// TestSemaphoreLimitChanges: a stored limit overrides every caller's n.
// Lowering it keeps the holders beyond it valid (they refresh) and grants
// nothing until fewer than the limit are held; raising it wakes waiters
// at once, by hand-over; clearing it brings the callers' n back.
func TestSemaphoreLimitChanges(t *testing.T) {
	forEachSem(t, false, func(t *testing.T, b semBackend) {
		ctx := context.Background()
		name := semName(t, b, "sem")
		c := b.client(t)
		s := c.Semaphore(name, 3)
		ls := []*relock.Lock{mustPermit(t, s, 30*time.Second), mustPermit(t, s, 30*time.Second), mustPermit(t, s, 30*time.Second)}
		if err := s.SetLimit(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Semaphore(name, 7).Limit(ctx); err != nil || n != 1 {
			t.Fatalf("Limit: %d, %v; want the stored 1", n, err)
		}
		for i, l := range ls {
			if err := l.Refresh(ctx, 30*time.Second); err != nil {
				t.Fatalf("holder %d beyond the lowered limit: %v", i, err)
			}
			if l.Err() != nil {
				t.Fatalf("holder %d ended: %v", i, l.Err())
			}
		}
		for i := range 3 {
			if _, err := c.Semaphore(name, 5).TryObtain(ctx, time.Second); !errors.Is(err, relock.ErrNotObtained) {
				t.Fatalf("with %d held, limit 1: %v, want ErrNotObtained", 3-i, err)
			}
			releasePermit(t, ls[i])
		}
		l := mustPermit(t, s, 30*time.Second) // none held: one granted
		if _, err := s.TryObtain(ctx, time.Second); !errors.Is(err, relock.ErrNotObtained) {
			t.Fatalf("second permit under limit 1: %v", err)
		}

		// Raising it: two queued waiters get the new permits at once.
		out := make(chan permitResult, 2)
		var handed atomic.Int32
		obs := relock.ObserverFunc(func(e relock.Event) {
			if e.Kind == relock.EventObtained && e.HandedOver {
				handed.Add(1)
			}
		})
		for i := range 2 {
			permitAsync(ctx, b.client(t).Semaphore(name, 1), 30*time.Second, i, out, relock.WithMaxWait(10*time.Second), relock.WithObserver(obs))
			waitSemWaiters(t, s, i+1)
		}
		time.Sleep(20 * time.Millisecond)
		start := time.Now()
		if err := s.SetLimit(ctx, 3); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			r := <-out
			if r.err != nil {
				t.Fatal(r.err)
			}
			if d := r.at.Sub(start); d > 100*time.Millisecond {
				t.Errorf("woken %v after the limit was raised", d)
			}
			defer releasePermit(t, r.l)
		}
		if handed.Load() != 2 {
			t.Errorf("%d of 2 permits came by hand-over", handed.Load())
		}
		info, err := s.Inspect(ctx)
		if err != nil || info.Limit != 3 || !info.LimitStored || len(info.Holders) != 3 {
			t.Fatalf("Inspect: %+v, %v", info, err)
		}
		// Cleared: this caller's n (3) is in force again.
		if err := s.SetLimit(ctx, 0); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Semaphore(name, 4).Limit(ctx); err != nil || n != 4 {
			t.Fatalf("Limit after clearing: %d, %v; want the caller's 4", n, err)
		}
		releasePermit(t, l)
	})
}

// TestSemaphoreLoss: a permit taken away (its key deleted) is ErrNotHeld
// to Refresh, which ends it with ErrLost, and to Release, as a lock's; an auto-refreshed
// permit outlives its TTL, then its Done closes when it is taken away.
func TestSemaphoreLoss(t *testing.T) {
	forEachSem(t, false, func(t *testing.T, b semBackend) {
		ctx := context.Background()
		name := semName(t, b, "sem")
		s := b.client(t).Semaphore(name, 2)
		l := mustPermit(t, s, 30*time.Second)
		b.do(t, "DEL", name)
		if err := l.Refresh(ctx, 30*time.Second); !errors.Is(err, relock.ErrNotHeld) {
			t.Fatalf("Refresh of a lost permit: %v, want ErrNotHeld", err)
		}
		if !errors.Is(l.Err(), relock.ErrLost) {
			t.Fatalf("Err after the refresh found it gone: %v, want ErrLost", l.Err())
		}
		if err := l.Release(ctx); !errors.Is(err, relock.ErrNotHeld) {
			t.Fatalf("Release of a lost permit: %v, want ErrNotHeld", err)
		}
		if !b.real {
			return // miniredis: the rest needs keys that expire by themselves
		}
		a := mustPermit(t, s, 200*time.Millisecond, relock.WithAutoRefresh())
		time.Sleep(600 * time.Millisecond)
		if a.Err() != nil {
			t.Fatalf("auto-refreshed permit ended: %v", a.Err())
		}
		if d, err := a.TTL(ctx); err != nil || d <= 0 {
			t.Fatalf("TTL: %v, %v", d, err)
		}
		b.do(t, "DEL", name)
		select {
		case <-a.Done():
			if !errors.Is(a.Err(), relock.ErrLost) {
				t.Fatalf("Err: %v, want ErrLost", a.Err())
			}
		case <-time.After(time.Second):
			t.Fatal("Done not closed after the permit was taken away")
		}
	})
}

// TestSemaphoreFencingMetadataEvents: fencing numbers increase across the
// semaphore's permits; Inspect lists each holder's token, metadata, fence
// and TTL, and the live waiters; an observer hears of each permit.
func TestSemaphoreFencingMetadataEvents(t *testing.T) {
	forEachSem(t, false, func(t *testing.T, b semBackend) {
		ctx := context.Background()
		name := semName(t, b, "sem")
		var mu sync.Mutex
		var kinds []relock.EventKind
		obs := relock.ObserverFunc(func(e relock.Event) {
			mu.Lock()
			kinds = append(kinds, e.Kind)
			mu.Unlock()
		})
		s := b.client(t).Semaphore(name, 2, relock.WithFencing(), relock.WithObserver(obs))
		var last int64
		for range 4 {
			l := mustPermit(t, s, 30*time.Second)
			if l.Fence() <= last {
				t.Fatalf("fence %d after %d", l.Fence(), last)
			}
			last = l.Fence()
			releasePermit(t, l)
		}
		a := mustPermit(t, s, 30*time.Second, relock.WithMetadata("host=a"))
		c := mustPermit(t, s, 20*time.Second, relock.WithMetadata("host=c"))
		out := make(chan permitResult, 1)
		wctx, cancel := context.WithCancel(ctx)
		permitAsync(wctx, b.client(t).Semaphore(name, 2), time.Second, 0, out)
		waitSemWaiters(t, s, 1)
		info, err := s.Inspect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Limit != 2 || info.LimitStored || info.Waiters != 1 || len(info.Holders) != 2 || info.Fence != c.Fence() {
			t.Fatalf("Inspect: %+v", info)
		}
		// The soonest to expire first: c.
		for i, want := range []struct {
			l    *relock.Lock
			meta string
		}{{c, "host=c"}, {a, "host=a"}} {
			h := info.Holders[i]
			if h.Token != want.l.Token() || h.Metadata != want.meta || h.Fence != want.l.Fence() || h.TTL <= 0 || h.TTL > 30*time.Second {
				t.Fatalf("holder %d: %+v, want token %s, %q, fence %d", i, h, want.l.Token(), want.meta, want.l.Fence())
			}
		}
		// The error of a waiter that gives up names a holder.
		_, err = b.client(t).Semaphore(name, 2).Obtain(ctx, time.Second, relock.WithMaxWait(50*time.Millisecond))
		if !errors.Is(err, relock.ErrNotObtained) {
			t.Fatalf("Obtain with both permits taken: %v", err)
		}
		t.Log(err)
		cancel()
		if r := <-out; !errors.Is(r.err, relock.ErrNotObtained) {
			t.Fatalf("cancelled waiter: %v", r.err)
		}
		releasePermit(t, a)
		releasePermit(t, c)
		mu.Lock()
		defer mu.Unlock()
		var obtained, released int
		for _, k := range kinds {
			switch k {
			case relock.EventObtained:
				obtained++
			case relock.EventReleased:
				released++
			}
		}
		if obtained != 6 || released != 6 {
			t.Fatalf("events: %d obtained, %d released; want 6 each (%v)", obtained, released, kinds)
		}
	})
}

// TestSemaphorePrefixAndTag: with a key prefix and a hash-tagged name,
// every key the semaphore writes starts with the prefix and hashes to the
// semaphore key's slot.
func TestSemaphorePrefixAndTag(t *testing.T) {
	forEachSem(t, false, func(t *testing.T, b semBackend) {
		ctx := context.Background()
		prefix := fmt.Sprintf("p%d:", time.Now().UnixNano())
		name := "{jobs}:sem"
		c := b.client(t, relock.WithKeyPrefix(prefix))
		s := c.Semaphore(name, 1, relock.WithFencing())
		l := mustPermit(t, s, 30*time.Second, relock.WithMetadata("m"))
		out := make(chan permitResult, 1)
		permitAsync(ctx, b.client(t, relock.WithKeyPrefix(prefix)).Semaphore(name, 1), 30*time.Second, 0, out, relock.WithMaxWait(5*time.Second))
		waitSemWaiters(t, s, 1)
		if err := s.SetLimit(ctx, 1); err != nil {
			t.Fatal(err)
		}
		r, err := testredis.Do(b.addr, "KEYS", prefix+"*")
		if err != nil {
			t.Fatal(err)
		}
		keys, _ := r.([]any)
		if len(keys) < 5 { // semaphore, holders, limit, queue, waiter, fence
			t.Fatalf("keys under the prefix: %v", keys)
		}
		slot := testredis.KeySlot(prefix + name)
		for _, k := range keys {
			ks, _ := k.(string)
			if testredis.KeySlot(ks) != slot {
				t.Errorf("key %q hashes to slot %d, the semaphore's to %d", ks, testredis.KeySlot(ks), slot)
			}
			t.Cleanup(func() { _, _ = testredis.Do(b.addr, "DEL", ks) })
		}
		releasePermit(t, l)
		res := <-out
		if res.err != nil {
			t.Fatal(res.err)
		}
		if res.l.Key() != name {
			t.Fatalf("Key: %q", res.l.Key())
		}
		releasePermit(t, res.l)
		_ = s.SetLimit(ctx, 0)
	})
}

// TestSemaphoreWrongTypeAndReplicas: a semaphore whose key holds a string
// is ErrWrongType, and nothing is written; WithReplicas waits for replicas
// after the write (the shared server has none: ErrTooFewReplicas, and the
// permit is given back).
func TestSemaphoreWrongTypeAndReplicas(t *testing.T) {
	forEachSem(t, true, func(t *testing.T, b semBackend) {
		ctx := context.Background()
		name := semName(t, b, "sem")
		c := b.client(t)
		b.do(t, "SET", name, "x", "PX", "10000")
		s := c.Semaphore(name, 2)
		if _, err := s.TryObtain(ctx, time.Second); !errors.Is(err, relock.ErrWrongType) {
			t.Fatalf("Obtain: %v, want ErrWrongType", err)
		}
		if _, err := s.Inspect(ctx); !errors.Is(err, relock.ErrWrongType) {
			t.Fatalf("Inspect: %v, want ErrWrongType", err)
		}
		if r := b.do(t, "GET", name); r != "x" {
			t.Fatalf("key now %v", r)
		}
		b.do(t, "DEL", name)
		_, err := s.TryObtain(ctx, time.Second, relock.WithReplicas(1, 20*time.Millisecond))
		if !errors.Is(err, relock.ErrTooFewReplicas) {
			t.Fatalf("WithReplicas: %v, want ErrTooFewReplicas", err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for {
			info, err := s.Inspect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(info.Holders) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the permit refused for want of replicas is still held: %+v", info)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// TestSemaphoreCluster: on a Redis Cluster, permits, a hand-over and
// Inspect work on a hash-tagged name and on a plain one (no CROSSSLOT).
func TestSemaphoreCluster(t *testing.T) {
	testredis.SkipShort(t, "starts a Redis Cluster")
	cl := testredis.StartCluster(t)
	newCl := func() *relock.Client {
		rdb := goredislib.NewClusterClient(&goredislib.ClusterOptions{Addrs: cl.Addrs()})
		t.Cleanup(func() { _ = rdb.Close() })
		return newClient(t, goredis.New(rdb))
	}
	a, w := newCl(), newCl()
	for _, name := range []string{"{sem}:jobs", "plain-sem"} {
		s := a.Semaphore(name, 1, relock.WithFencing())
		l := mustPermit(t, s, 30*time.Second)
		out := make(chan permitResult, 1)
		permitAsync(context.Background(), w.Semaphore(name, 1), 30*time.Second, 0, out, relock.WithMaxWait(5*time.Second), relock.WithFencing())
		waitSemWaiters(t, s, 1)
		start := time.Now()
		releasePermit(t, l)
		r := <-out
		if r.err != nil {
			t.Fatal(r.err)
		}
		t.Logf("%s: hand-over in %v", name, r.at.Sub(start))
		if r.l.Fence() <= l.Fence() {
			t.Fatalf("fence %d after %d", r.l.Fence(), l.Fence())
		}
		releasePermit(t, r.l)
	}
}

// TestSemaphoreScriptContract runs the semaphore's scripts by hand and
// checks the replies the obtainer relies on (obtain.lua's contract):
// statuses 1 (taken, and again: ours), 0 (all taken, pttl the earliest
// expiry, the server's clock), 2 (queued, a waiter key holding the
// claim), 3 (a renewal whose place is gone), 4 (a token that left), and a
// release that hands the free permit to the first live waiter (skipping a
// dead one) with its claim and metadata.
func TestSemaphoreScriptContract(t *testing.T) {
	forEachSem(t, false, func(t *testing.T, b semBackend) {
		name := semName(t, b, "sem")
		tag := "{" + name + "}:relock:"
		sem, q, hold, lim, fence, w := name, tag+"q:"+name, tag+"sh:"+name, tag+"sl:"+name, tag+"f:"+name, tag+"w:"+name+":"
		t.Cleanup(func() { _, _ = testredis.Do(b.addr, "DEL", q, fence, w+"c", w+"d", w+"e") })
		eval := func(src string, keys []string, args ...string) any {
			t.Helper()
			cmd := append([]string{"EVAL", src, fmt.Sprint(len(keys))}, keys...)
			return b.do(t, append(cmd, args...)...)
		}
		obtain := func(token, mode string) []any {
			t.Helper()
			r, _ := eval(scripts.SemObtain.Src, []string{sem, q, hold, lim}, token, "10000", mode, w, "5000", "", "86400000", "250", "", "2").([]any)
			if len(r) != 5 {
				t.Fatalf("obtain reply %v", r)
			}
			return r
		}
		status := func(r []any) int64 { n, _ := r[0].(int64); return n }
		if r := obtain("a", "0"); status(r) != 1 || r[1] != int64(10000) {
			t.Fatalf("free: %v", r)
		}
		if r := obtain("a", "0"); status(r) != 1 {
			t.Fatalf("ours again: %v", r)
		}
		if r := obtain("b", "0"); status(r) != 1 {
			t.Fatalf("second permit: %v", r)
		}
		r := obtain("c", "0")
		if pttl, _ := r[1].(int64); status(r) != 0 || pttl <= 9000 || pttl > 10000 || r[3] == int64(0) {
			t.Fatalf("all taken: %v", r)
		}
		if r := obtain("c", "1"); status(r) != 2 {
			t.Fatalf("join: %v", r)
		}
		if v := b.do(t, "GET", w+"c"); v != "250" {
			t.Fatalf("waiter key: %v, want the claim", v)
		}
		if r := obtain("c", "2"); status(r) != 2 {
			t.Fatalf("renew: %v", r)
		}
		b.do(t, "DEL", w+"c")
		if r := obtain("c", "2"); status(r) != 3 {
			t.Fatalf("renewal of a lapsed place: %v", r)
		}
		// d queues, dies (its waiter key goes), e queues behind it.
		obtain("d", "1")
		r2, _ := eval(scripts.SemObtain.Src, []string{sem, q, hold, lim}, "e", "10000", "1", w, "5000", "meta-e", "86400000", "250", "", "2").([]any)
		if status(r2) != 2 {
			t.Fatalf("join e: %v", r2)
		}
		b.do(t, "DEL", w+"d")
		if r := eval(scripts.SemRelease.Src, []string{sem, q, hold, lim, fence}, "a", w, "chan", "", "10000", "86400000", "2"); r != int64(1) {
			t.Fatalf("release: %v", r)
		}
		if r := eval(scripts.SemRelease.Src, []string{sem, q, hold, lim, fence}, "a", w, "chan", "", "10000", "86400000", "2"); r != int64(0) {
			t.Fatalf("second release: %v", r)
		}
		if s, _ := b.do(t, "ZSCORE", sem, "d").(string); s != "" {
			t.Fatalf("the dead waiter got a permit")
		}
		if left := eval(scripts.SemPTTL.Src, []string{sem}, "e"); left.(int64) <= 0 || left.(int64) > 250 {
			t.Fatalf("e's handed permit: %v ms left, want its claim (250)", left)
		}
		if v := b.do(t, "HGET", hold, "e"); v != "0|meta-e" {
			t.Fatalf("e's entry: %v", v)
		}
		if r := eval(scripts.SemRefresh.Src, []string{sem, hold}, "e", "10000"); r != int64(1) {
			t.Fatalf("confirm: %v", r)
		}
		if r := eval(scripts.SemRefresh.Src, []string{sem, hold}, "a", "10000"); r != int64(0) {
			t.Fatalf("refresh of a released permit: %v", r)
		}
		if r := eval(scripts.SemPTTL.Src, []string{sem}, "a"); r != int64(-3) {
			t.Fatalf("pttl of a released permit: %v", r)
		}
		// c leaves for good: a late join is refused.
		eval(scripts.SemRelease.Src, []string{sem, q, hold, lim, fence}, "c", w, "chan", "leave", "10000", "86400000", "2")
		if r := obtain("c", "1"); status(r) != 4 {
			t.Fatalf("join after leaving: %v", r)
		}
		for _, tok := range []string{"b", "e"} {
			eval(scripts.SemRelease.Src, []string{sem, q, hold, lim, fence}, tok, w, "chan", "", "10000", "86400000", "2")
		}
		if r := b.do(t, "EXISTS", sem, hold); r != int64(0) {
			t.Fatalf("keys left after the last release: %v", r)
		}
	})
}

// TestSemaphoreEveryDriver: through every registered driver (the six
// adapters, opened by name), two permits are taken with fencing and
// metadata, a waiter from another Client is handed the first one released
// (by hand-over, its fence above both), and Inspect lists the holders.
func TestSemaphoreEveryDriver(t *testing.T) {
	url := testredis.URL(t)
	ctx := context.Background()
	for _, drv := range relock.Drivers() {
		t.Run(drv, func(t *testing.T) {
			open := func() *relock.Client {
				c, err := relock.Open(drv, url)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = c.Close() })
				return c
			}
			b := semBackend{addr: testredis.Addr(t), real: true}
			name := semName(t, b, "sem")
			t.Cleanup(func() { _, _ = testredis.Do(b.addr, "DEL", "{"+name+"}:relock:f:"+name) })
			s := open().Semaphore(name, 2, relock.WithFencing())
			a := mustPermit(t, s, 30*time.Second, relock.WithMetadata("a"))
			c := mustPermit(t, s, 30*time.Second, relock.WithMetadata("c"))
			var handed atomic.Bool
			obs := relock.ObserverFunc(func(e relock.Event) {
				if e.Kind == relock.EventObtained && e.HandedOver {
					handed.Store(true)
				}
			})
			out := make(chan permitResult, 1)
			permitAsync(ctx, open().Semaphore(name, 2, relock.WithFencing()), 30*time.Second, 0, out, relock.WithMaxWait(10*time.Second), relock.WithObserver(obs))
			waitSemWaiters(t, s, 1)
			info, err := s.Inspect(ctx)
			if err != nil || len(info.Holders) != 2 || info.Holders[0].Metadata+info.Holders[1].Metadata != "ac" && info.Holders[0].Metadata+info.Holders[1].Metadata != "ca" {
				t.Fatalf("Inspect: %+v, %v", info, err)
			}
			start := time.Now()
			releasePermit(t, a)
			r := <-out
			if r.err != nil {
				t.Fatal(r.err)
			}
			t.Logf("hand-over in %v", r.at.Sub(start))
			if !handed.Load() || r.l.Fence() <= c.Fence() || c.Fence() <= a.Fence() {
				t.Fatalf("handed over: %v; fences %d, %d, then %d", handed.Load(), a.Fence(), c.Fence(), r.l.Fence())
			}
			releasePermit(t, r.l)
			releasePermit(t, c)
		})
	}
}

// TestSemaphoreWatchPath: a Client on the WATCH path (a real go-redis
// client without scripts) cannot run a semaphore: ErrUnsupported, and
// nothing is written.
func TestSemaphoreWatchPath(t *testing.T) {
	addr := testredis.Addr(t)
	conn, closeConn, err := chaos.NewConn("goredis", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeConn)
	w, err := chaos.NewWatchOnly(conn)
	if err != nil {
		t.Fatal(err)
	}
	name := semName(t, semBackend{addr: addr}, "sem")
	s := newClient(t, w).Semaphore(name, 2)
	if _, err := s.Obtain(context.Background(), time.Second); !errors.Is(err, relock.ErrUnsupported) {
		t.Fatalf("Obtain: %v, want ErrUnsupported", err)
	}
	if r, _ := testredis.Do(addr, "EXISTS", name); r != int64(0) {
		t.Fatalf("EXISTS: %v", r)
	}
}

// TestSemaphoreReplicas: on a server with one replica, a permit taken
// WithReplicas(1, ...) is on the replica when Obtain returns, and so is
// its refresh, through every adapter.
func TestSemaphoreReplicas(t *testing.T) {
	testredis.SkipShort(t, "starts a server and a replica")
	primary := testredis.Start(t)
	replica := testredis.StartReplica(t, primary)
	for _, adapter := range chaos.Adapters {
		t.Run(adapter, func(t *testing.T) {
			ctx := context.Background()
			name := "sem-replicas-" + adapter
			s := electClient(t, adapter, primary.Addr()).Semaphore(name, 2)
			l, err := s.Obtain(ctx, 30*time.Second, relock.WithReplicas(1, time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if r, err := testredis.Do(replica.Addr(), "ZSCORE", name, l.Token()); err != nil || r == nil {
				t.Fatalf("the permit is not on the replica when Obtain returns: %v, %v", r, err)
			}
			if err := l.Refresh(ctx, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			releasePermit(t, l)
		})
	}
}

// TestSemaphoreACL: a Redis user with the lock's ACL line of
// docs/permissions.md plus the commands docs/semaphore.md lists, confined
// to its prefix, runs every semaphore operation (a hand-over included).
func TestSemaphoreACL(t *testing.T) {
	srv := testredis.Start(t)
	const line = "reset on >s3cret ~app:* &app:* +set +get +del +pexpire +pttl +exists +incr +time +lindex +lpop +rpush +lrange +lrem +eval +evalsha +publish +subscribe +unsubscribe +ping +wait" +
		" +zadd +zrem +zscore +zcard +zrange +zrangebyscore +zremrangebyscore +hset +hget +hdel +pexpireat"
	if _, err := testredis.Do(srv.Addr(), append([]string{"ACL", "SETUSER", "app"}, strings.Fields(line)...)...); err != nil {
		t.Fatal(err)
	}
	open := func() *relock.Client {
		rdb := goredislib.NewClient(&goredislib.Options{Addr: srv.Addr(), Username: "app", Password: "s3cret"})
		t.Cleanup(func() { _ = rdb.Close() })
		return newClient(t, goredis.New(rdb), relock.WithKeyPrefix("app:"))
	}
	ctx := context.Background()
	s := open().Semaphore("jobs", 1, relock.WithFencing(), relock.WithMetadata("m"))
	l := mustPermit(t, s, 30*time.Second)
	out := make(chan permitResult, 1)
	permitAsync(ctx, open().Semaphore("jobs", 1), 30*time.Second, 0, out, relock.WithMaxWait(5*time.Second))
	waitSemWaiters(t, s, 1)
	if err := s.SetLimit(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := l.Refresh(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TTL(ctx); err != nil {
		t.Fatal(err)
	}
	releasePermit(t, l)
	r := <-out
	if r.err != nil {
		t.Fatal(r.err)
	}
	releasePermit(t, r.l)
	if err := s.SetLimit(ctx, 0); err != nil {
		t.Fatal(err)
	}
}
