package chaos_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/internal/testkit/testredis"
	"github.com/relock-go/relock/tests/chaos"
)

// TestCheckPermits: the permit checker counts overlapping intervals, lets
// touching ones pass, ends an interval at the earliest of release, Done
// and validity, names the holds of an excess, and counts fencing numbers
// given twice.
func TestCheckPermits(t *testing.T) {
	base := time.Now()
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	hold := func(name string, from, rel, valid int) chaos.Hold {
		return chaos.Hold{Worker: name, Acquired: at(from), ReleaseCalled: at(rel), ValidUntil: at(valid)}
	}
	s := chaos.Snapshot{Holds: []chaos.Hold{
		hold("a", 0, 100, 1000),
		hold("b", 10, 100, 1000),
		hold("c", 100, 200, 1000), // touches a and b: no overlap
		hold("d", 150, 900, 160),  // its validity ends at 160
		hold("e", 170, 300, 1000),
	}}
	r := chaos.CheckPermits(s, 2)
	if r.MaxHolders != 2 || len(r.Excess) != 0 {
		t.Fatalf("limit 2: %+v", r)
	}
	s.Holds = append(s.Holds, hold("f", 50, 60, 1000))
	r = chaos.CheckPermits(s, 2)
	if r.MaxHolders != 3 || len(r.Excess) != 1 || !r.MaxAt.Equal(at(50)) {
		t.Fatalf("a third holder at 50 ms: %+v", r)
	}
	var names []string
	for _, h := range r.Excess[0] {
		names = append(names, h.Worker)
	}
	if strings.Join(names, ",") != "a,b,f" {
		t.Fatalf("excess holds: %v", names)
	}
	if r := chaos.CheckPermits(s, 3); len(r.Excess) != 0 || r.DuplicateFences != 0 {
		t.Fatalf("limit 3: %+v", r)
	}
	s.Holds[0].Fence, s.Holds[1].Fence, s.Holds[2].Fence = 7, 8, 7
	if r := chaos.CheckPermits(s, 3); r.DuplicateFences != 1 {
		t.Fatalf("fences 7, 8, 7: %d duplicates, want 1", r.DuplicateFences)
	}
}

// semPermits is the semaphore workload's limit.
const semPermits = 3

// TestSemaphoreFaults runs the single-server scenarios of TestFaults that
// fault the server or the connections (see serverFault) with
// a semaphore workload: twelve workers (four per adapter) taking permits
// of one semaphore of semPermits permits, with auto-refresh and fencing,
// under the scenario's faults. At no instant may more than semPermits
// holders rely on a permit, and permits must keep being granted after
// every fault.
func TestSemaphoreFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection; skipped under -short")
	}
	for _, sc := range scenarios() {
		if !sc.safe || !onSingle(sc) || !serverFault(sc.name) {
			continue
		}
		t.Run(sc.name, func(t *testing.T) { runSemScenario(t, sc) })
	}
}

// serverFault reports whether the scenario named name faults the server
// or the connections only: the others' faults take the workload's key as
// a lock's (a crashing waiter, lost waiters), which a semaphore's is not.
func serverFault(name string) bool {
	for _, p := range []string{"none", "SIGSTOP of the server", "CLIENT KILL", "SCRIPT FLUSH", "DEBUG SLEEP", "CLIENT PAUSE"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// onSingle reports whether sc runs on one private server: its setup is
// single (functions compare by their code's address only).
func onSingle(sc scenario) bool {
	return sc.setup != nil && fmt.Sprintf("%p", sc.setup) == fmt.Sprintf("%p", single)
}

func runSemScenario(t *testing.T, sc scenario) {
	leaks := append([]goleak.Option{goleak.IgnoreCurrent()}, leakOptions...)
	t.Cleanup(func() {
		waitDialersGone(t)
		goleak.VerifyNone(t, leaks...)
	})
	e := &env{t: t}
	e.srv = testredis.Start(t)
	cl := &closers{}
	t.Cleanup(cl.run)
	var mu sync.Mutex
	for _, adapter := range chaos.Adapters {
		for i := range perAdapter {
			c, err := lockClient(cl, adapter, []string{e.srv.Addr()}, nil)
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			e.workers = append(e.workers, chaos.Worker{Name: fmt.Sprintf("%s-%d", adapter, i+1), Locker: chaos.SemaphoreLocker{
				Client: c, N: semPermits, Options: []relock.Option{relock.WithAutoRefresh(), relock.WithFencing()},
			}})
			mu.Unlock()
		}
	}
	e.h = chaos.NewHistory()
	e.inj = chaos.Injector{T: t, Server: e.srv, History: e.h}
	e.wl = &chaos.Workload{
		Key: "chaos:sem", TTL: lockTTL, ObtainTimeout: obtainTimeout, HoldMin: holdMin, HoldMax: holdMax,
		LongEvery: longEvery, LongMin: longMin, LongMax: longMax,
		Workers: e.workers, History: e.h,
	}
	e.runScenario(sc.duration, sc.faults)

	snap := e.h.Snapshot()
	r := chaos.CheckPermits(snap, semPermits)
	lr := chaos.Check(snap) // for recoveries: some permit granted after each fault
	t.Logf("%d Obtain calls, %d permits; at most %d held at once", lr.ObtainCalls, r.Acquisitions, r.MaxHolders)
	for _, rec := range lr.Recoveries {
		t.Logf("  fault %q: next permit after %v (recovered: %v)", rec.Fault.Name, rec.After.Round(time.Millisecond), rec.Recovered)
		if !rec.Recovered || rec.After > livenessBound {
			t.Errorf("fault %q: no permit granted within %v after it (%v)", rec.Fault.Name, livenessBound, rec.After)
		}
	}
	if r.Acquisitions == 0 {
		t.Fatal("no permits at all")
	}
	if r.DuplicateFences > 0 {
		t.Errorf("%d permits with a fencing number another permit had", r.DuplicateFences)
	}
	if r.MaxHolders < 2 {
		t.Errorf("at most %d permit held at once: the workload shows nothing about the limit", r.MaxHolders)
	}
	for _, hs := range r.Excess {
		var b strings.Builder
		for _, h := range hs {
			fmt.Fprintf(&b, "\n  %s fence %d acquired %v safe end %v", h.Worker, h.Fence, h.Acquired.Sub(snap.Start), h.SafeEnd().Sub(snap.Start))
		}
		t.Errorf("more than %d permit holders at once:%s", semPermits, b.String())
	}
}
