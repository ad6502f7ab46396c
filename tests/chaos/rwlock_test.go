package chaos_test

// The read-write lock under faults: nine readers and three writers (three
// and one per adapter, each on a Client of its own, auto-refreshed and
// fenced) take one read-write lock again and again while the server is
// suspended, killed off its clients, flushed of its scripts, put to sleep,
// or a writer or a reader crashes holding it. CheckRW holds the history to the
// read-write rule (no writer's hold overlaps any other hold; readers do
// overlap); Check gives the fenced writes (a reader's number checked as a
// write: it must not be below one accepted before), the recoveries and
// the longest free stretch with waiters.

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/internal/testkit/testredis"
	"github.com/relock-go/relock/tests/chaos"
)

type rwScenario struct {
	name     string
	duration time.Duration
	faults   func(e *env)
}

// addRWWorkers gives e three readers and one writer per adapter on the
// server at addr.
func (e *env) addRWWorkers(addr string) {
	e.t.Helper()
	cl := &closers{}
	e.t.Cleanup(cl.run)
	opts := []relock.Option{relock.WithAutoRefresh(), relock.WithFencing()}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	for _, adapter := range chaos.Adapters {
		for i := range 4 {
			wg.Go(func() {
				c, err := lockClient(cl, adapter, []string{addr}, nil)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					firstErr = err
					return
				}
				write := i == 3
				name := fmt.Sprintf("reader-%s-%d", adapter, i+1)
				if write {
					name = chaos.WriterPrefix + adapter
				}
				e.workers = append(e.workers, chaos.Worker{Name: name, Locker: chaos.RWLocker{Client: c, Write: write, Options: opts}})
			})
		}
	}
	wg.Wait()
	if firstErr != nil {
		e.t.Fatal(firstErr)
	}
}

// crashRW takes a read lock (or, with write, the write lock) through a
// client of its own and crashes holding it: it frees at its TTL, the
// fault's end.
func (e *env) crashRW(write bool) {
	conn, closeClient, err := chaos.NewConn("goredis", e.srv.Addr())
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := relock.New(conn)
	if err != nil {
		closeClient()
		e.t.Fatal(err)
	}
	name, what := "reader-crashing", "a reader"
	if write {
		name, what = chaos.WriterPrefix+"crashing", "a writer"
	}
	w := chaos.Worker{Name: name, Locker: chaos.RWLocker{Client: c, Write: write, Options: []relock.Option{relock.WithAutoRefresh(), relock.WithFencing()}}}
	crash := func() {
		closeClient()
		_ = c.Close()
	}
	var hold *chaos.Hold
	for hold == nil && !e.over() {
		hold = e.wl.Cycle(e.ctx, w, 100*time.Millisecond, crash)
	}
	if hold == nil {
		crash()
		return
	}
	var abandon, until time.Time
	for range 100 {
		done := false
		e.h.Update(func() { abandon, until, done = hold.Abandon, hold.BusyEnd(), !hold.DoneAt.IsZero() })
		if done {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.h.AddFault(what+" crashed holding the lock (until its lease ended)", abandon, until)
}

func rwScenarios() []rwScenario {
	return []rwScenario{
		{name: "none", duration: 5 * time.Second},
		{name: "SIGSTOP of the server for 1 s (2.5× TTL)", duration: 7 * time.Second, faults: func(e *env) {
			e.at(1500 * time.Millisecond)
			e.inj.Suspend(time.Second)
		}},
		{name: "CLIENT KILL TYPE normal, then pubsub", duration: 7 * time.Second, faults: func(e *env) {
			for i, typ := range []string{"normal", "pubsub"} {
				e.at(1500*time.Millisecond + time.Duration(i)*1500*time.Millisecond)
				if e.over() {
					return
				}
				e.inj.ClientKill(typ)
			}
		}},
		{name: "SCRIPT FLUSH every 0.5 s", duration: 6 * time.Second, faults: func(e *env) {
			for i := range 6 {
				e.at(time.Second + time.Duration(i)*500*time.Millisecond)
				if e.over() {
					return
				}
				e.inj.ScriptFlush()
			}
		}},
		{name: "DEBUG SLEEP 0.8 s (2× TTL)", duration: 6 * time.Second, faults: func(e *env) {
			e.at(1500 * time.Millisecond)
			e.inj.DebugSleep(800 * time.Millisecond)
		}},
		{name: "a writer crashes holding the lock", duration: 6 * time.Second, faults: func(e *env) {
			e.at(1500 * time.Millisecond)
			e.crashRW(true)
		}},
		{name: "a reader crashes holding the lock", duration: 6 * time.Second, faults: func(e *env) {
			e.at(1500 * time.Millisecond)
			e.crashRW(false)
		}},
	}
}

// TestRWFaults runs the read-write workload under each scenario.
func TestRWFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection takes about 45 s; skipped under -short")
	}
	for _, sc := range rwScenarios() {
		t.Run(sc.name, func(t *testing.T) { runRWScenario(t, sc) })
	}
}

func runRWScenario(t *testing.T, sc rwScenario) {
	leaks := append([]goleak.Option{goleak.IgnoreCurrent()}, leakOptions...)
	t.Cleanup(func() {
		waitDialersGone(t)
		goleak.VerifyNone(t, leaks...)
	})
	e := &env{t: t}
	e.srv = testredis.Start(t)
	e.addRWWorkers(e.srv.Addr())
	e.h = chaos.NewHistory()
	e.inj = chaos.Injector{T: t, Server: e.srv, History: e.h}
	e.wl = &chaos.Workload{
		Key: "chaos:rw", TTL: lockTTL, ObtainTimeout: obtainTimeout, HoldMin: holdMin, HoldMax: holdMax,
		LongEvery: longEvery, LongMin: longMin, LongMax: longMax,
		Fenced: true, Workers: e.workers, History: e.h,
	}
	e.runScenario(sc.duration, sc.faults)

	snap := e.h.Snapshot()
	rw := chaos.CheckRW(snap)
	r := chaos.Check(snap)
	t.Logf("%d reads, %d writes (%d Obtain calls); %d reader pairs overlapped; %d fenced writes, %d stale; %d losses (%d signalled first)",
		rw.Reads, rw.Writes, r.ObtainCalls, rw.ReaderOverlaps, r.Writes, r.StaleWrites, rw.Losses, rw.LossesSignalledFirst)
	for _, rec := range r.Recoveries {
		t.Logf("  fault %q: next holder after %v (recovered: %v)", rec.Fault.Name, rec.After.Round(time.Millisecond), rec.Recovered)
	}
	t.Logf("  longest free with waiters: %v", r.LongestFreeWithWaiters.Round(time.Millisecond))
	if len(rw.Violations) > 0 {
		for i, v := range rw.Violations {
			if i == 5 {
				break
			}
			t.Logf("  overlap %v: %s %v–%v and %s from %v", v.For, v.First.Worker, v.First.Acquired.Sub(snap.Start), v.First.SafeEnd().Sub(snap.Start), v.Second.Worker, v.Second.Acquired.Sub(snap.Start))
		}
		t.Errorf("%d holds overlap a writer's", len(rw.Violations))
	}
	if r.StaleWrites > 0 {
		t.Errorf("%d stale fenced writes", r.StaleWrites)
	}
	if rw.LossesSignalledFirst != rw.Losses {
		t.Errorf("%d of %d lost locks were signalled only after a conflicting holder got in", rw.Losses-rw.LossesSignalledFirst, rw.Losses)
	}
	if rw.Reads < 20 || rw.Writes < 5 || rw.ReaderOverlaps == 0 {
		t.Errorf("reads %d, writes %d, reader overlaps %d: want progress of both and readers together", rw.Reads, rw.Writes, rw.ReaderOverlaps)
	}
	if d, all := r.MaxRecovery(); d > livenessBound {
		t.Errorf("recovery: longest %v (every fault followed by a holder: %v); the bound is %v", d, all, livenessBound)
	}
	if r.LongestFreeWithWaiters > livenessBound {
		t.Errorf("the lock sat free for %v while workers waited; the bound is %v", r.LongestFreeWithWaiters, livenessBound)
	}
}

// TestCheckRW: the read-write checker flags a reader or writer overlapping
// a writer, and counts readers overlapping each other, not as violations.
func TestCheckRW(t *testing.T) {
	base := time.Now()
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	hold := func(worker string, from, to int) chaos.Hold {
		return chaos.Hold{Worker: worker, Acquired: at(from), ReleaseCalled: at(to), ValidUntil: at(to + 100)}
	}
	for _, c := range []struct {
		name          string
		holds         []chaos.Hold
		bad, together int
	}{
		{"readers together", []chaos.Hold{hold("r1", 0, 50), hold("r2", 10, 60), hold("r3", 20, 30)}, 0, 3},
		{"writers in turn", []chaos.Hold{hold("writer-a", 0, 50), hold("writer-b", 50, 60), hold("r1", 60, 70)}, 0, 0},
		{"reader inside a writer", []chaos.Hold{hold("writer-a", 0, 50), hold("r1", 40, 70)}, 1, 0},
		{"writer inside readers", []chaos.Hold{hold("r1", 0, 50), hold("r2", 5, 60), hold("writer-a", 55, 70)}, 1, 1},
		{"two writers", []chaos.Hold{hold("writer-a", 0, 50), hold("writer-b", 49, 70)}, 1, 0},
	} {
		r := chaos.CheckRW(chaos.Snapshot{Start: base, Stop: at(1000), Holds: c.holds})
		if len(r.Violations) != c.bad || r.ReaderOverlaps != c.together {
			t.Errorf("%s: %d violations, %d reader overlaps; want %d, %d", c.name, len(r.Violations), r.ReaderOverlaps, c.bad, c.together)
		}
	}
}
