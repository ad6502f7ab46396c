package chaos_test

import (
	"strings"
	"testing"
	"time"

	"github.com/relock-go/relock/tests/chaos"
)

var t0 = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// released is a hold from..to that its worker released at to.
func released(worker string, from, to int, fence int64) chaos.Hold {
	return chaos.Hold{Worker: worker, Acquired: at(from), TTL: 400 * time.Millisecond, Fence: fence,
		ReleaseCalled: at(to), ValidUntil: at(from + 394), DoneAt: at(to)}
}

func snapshot(stop int, holds []chaos.Hold, waits []chaos.Wait, faults []chaos.Fault) chaos.Snapshot {
	return chaos.Snapshot{Start: at(0), Stop: at(stop), Holds: holds, Waits: waits, Faults: faults}
}

func TestCheckOverlap(t *testing.T) {
	t.Run("back to back", func(t *testing.T) {
		r := chaos.Check(snapshot(1000, []chaos.Hold{
			released("a", 0, 50, 1), released("b", 50, 90, 2), released("c", 91, 120, 3),
		}, nil, nil))
		if r.Acquisitions != 3 || len(r.Violations) != 0 {
			t.Fatalf("acquisitions %d, violations %v; want 3, none", r.Acquisitions, r.Violations)
		}
	})
	t.Run("second inside the first", func(t *testing.T) {
		r := chaos.Check(snapshot(1000, []chaos.Hold{
			released("a", 0, 100, 1), released("b", 60, 80, 2), released("c", 100, 130, 3),
		}, nil, nil))
		if len(r.Violations) != 1 || r.Violations[0].First.Worker != "a" || r.Violations[0].Second.Worker != "b" || r.Violations[0].For != 20*time.Millisecond {
			t.Fatalf("violations %+v; want a and b for 20ms", r.Violations)
		}
		if !strings.Contains(r.Describe(t0), "held it together for 20ms") {
			t.Errorf("Describe = %q", r.Describe(t0))
		}
	})
	t.Run("validity ends the interval", func(t *testing.T) {
		// a never released, and its Done never closed (say the worker is
		// stuck): its interval ends at ValidUntil.
		a := chaos.Hold{Worker: "a", Acquired: at(0), TTL: 400 * time.Millisecond, ValidUntil: at(394)}
		r := chaos.Check(snapshot(1000, []chaos.Hold{a, released("b", 400, 450, 2)}, nil, nil))
		if len(r.Violations) != 0 {
			t.Fatalf("violations %v; want none: a's validity ended before b", r.Violations)
		}
		a.ValidUntil = at(420) // a refresh extended it past b's start
		r = chaos.Check(snapshot(1000, []chaos.Hold{a, released("b", 400, 450, 2)}, nil, nil))
		if len(r.Violations) != 1 {
			t.Fatalf("violations %v; want one", r.Violations)
		}
	})
	t.Run("dead on arrival is never relied on", func(t *testing.T) {
		doa := chaos.Hold{Worker: "a", Acquired: at(10), TTL: 400 * time.Millisecond, ValidUntil: at(5), DeadOnArrival: true, DoneAt: at(10)}
		r := chaos.Check(snapshot(1000, []chaos.Hold{released("b", 0, 50, 2), doa}, nil, nil))
		if len(r.Violations) != 0 || r.DeadOnArrival != 1 {
			t.Fatalf("violations %v, dead on arrival %d; want none, 1", r.Violations, r.DeadOnArrival)
		}
	})
}

func TestCheckLosses(t *testing.T) {
	// a lost its lock at 394 (Done closed, no Release yet); b got it at 400.
	lostEarly := chaos.Hold{Worker: "a", Acquired: at(0), TTL: 400 * time.Millisecond, ValidUntil: at(394), DoneAt: at(394), ReleaseCalled: at(500)}
	// c's key vanished early: d got in at 1420, while c was still valid,
	// and c's Done closed only after that: a late signal.
	lostLate := chaos.Hold{Worker: "c", Acquired: at(1000), TTL: 400 * time.Millisecond, ValidUntil: at(1600), DoneAt: at(1450)}
	// A Done that closes late (a busy timer) counts from ValidUntil: the
	// holder knows by then.
	lostLateTimer := chaos.Hold{Worker: "e", Acquired: at(2000), TTL: 400 * time.Millisecond, ValidUntil: at(2394), DoneAt: at(2402), ReleaseCalled: at(2402), EndedFirst: true}
	r := chaos.Check(snapshot(3000, []chaos.Hold{lostEarly, released("b", 400, 450, 2), lostLate, released("d", 1420, 1500, 4), lostLateTimer, released("f", 2400, 2450, 6)}, nil, nil))
	if r.Losses != 3 || r.LossesSignalledFirst != 2 {
		t.Fatalf("losses %d, signalled first %d; want 3, 2", r.Losses, r.LossesSignalledFirst)
	}
	// A crash is no loss.
	crash := chaos.Hold{Worker: "e", Acquired: at(2000), TTL: 400 * time.Millisecond, ValidUntil: at(2394), Abandoned: true, Abandon: at(2100), DoneAt: at(2100)}
	r = chaos.Check(snapshot(3000, []chaos.Hold{crash}, nil, nil))
	if r.Losses != 0 || r.Abandoned != 1 {
		t.Fatalf("losses %d, abandoned %d; want 0, 1", r.Losses, r.Abandoned)
	}
}

func TestCheckLiveness(t *testing.T) {
	waits := []chaos.Wait{
		{Worker: "w", Start: at(0), End: at(2000), OK: true},
		// Before the first acquisition (at 30): not counted.
		{Worker: "a", Start: at(0), End: at(30), OK: true},
	}
	holds := []chaos.Hold{
		released("a", 30, 100, 1),
		// free 100..300 while w waits: 200 ms
		released("b", 300, 400, 2),
		// free 400..1500, but a fault covers 400..1200: 300 ms count
		released("c", 1500, 1600, 3),
		// a crashed holder: busy until its key expires, 2394+6
		{Worker: "d", Acquired: at(1600), TTL: 400 * time.Millisecond, ValidUntil: at(1994), Abandoned: true, Abandon: at(1700), DoneAt: at(1700)},
		released("w", 2000, 2100, 5),
	}
	faults := []chaos.Fault{{Name: "stall", Start: at(400), End: at(1200)}, {Name: "kill", Start: at(1700), End: at(1700)}, {Name: "held", Start: at(2050), End: at(2060)}, {Name: "late", Start: at(2500), End: at(2500)}}
	r := chaos.Check(snapshot(3000, holds, waits, faults))
	if r.LongestFreeWithWaiters != 300*time.Millisecond || !r.FreeGapAt.Equal(at(1200)) {
		t.Errorf("longest free with waiters %v at %v; want 300ms at 1200ms", r.LongestFreeWithWaiters, r.FreeGapAt.Sub(t0))
	}
	want := []chaos.Recovery{
		{Fault: faults[0], After: 300 * time.Millisecond, Recovered: true},
		{Fault: faults[1], After: 300 * time.Millisecond, Recovered: true},
		{Fault: faults[2], After: 0, Recovered: true}, // w held it throughout
		{Fault: faults[3], After: 500 * time.Millisecond, Recovered: false},
	}
	if len(r.Recoveries) != len(want) {
		t.Fatalf("recoveries %+v", r.Recoveries)
	}
	for i := range want {
		if r.Recoveries[i] != want[i] {
			t.Errorf("recovery %d = %+v, want %+v", i, r.Recoveries[i], want[i])
		}
	}
	if d, all := r.MaxRecovery(); d != 500*time.Millisecond || all {
		t.Errorf("MaxRecovery = %v, %v", d, all)
	}
	// The crashed holder's key (until 1994+6) keeps the lock busy: w,
	// waiting until 2000, saw it free for 0 ms after it.
	row := r.Row("x", true, false)
	for _, s := range []string{"| x | yes | 5 | 0 | — | — | 0 ms–300 ms; 1 never (500 ms left) (4 faults) | 300 ms | 0 |"} {
		if row != s {
			t.Errorf("Row = %q\nwant  %q", row, s)
		}
	}
}

func TestFencedResource(t *testing.T) {
	h := chaos.NewHistory()
	for _, f := range []int64{1, 1, 2, 5, 3, 5, 6} {
		h.WriteFenced("w", f)
	}
	if wrote, ok := h.WriteFencedBefore("w", 7, time.Now().Add(time.Minute)); !wrote || !ok {
		t.Errorf("WriteFencedBefore within the lease: wrote %v, accepted %v", wrote, ok)
	}
	if wrote, _ := h.WriteFencedBefore("w", 8, time.Now().Add(-time.Millisecond)); wrote {
		t.Error("WriteFencedBefore wrote after the lease's end")
	}
	h.Stop()
	r := chaos.Check(h.Snapshot())
	if r.Writes != 8 || r.StaleWrites != 1 {
		t.Fatalf("writes %d, stale %d; want 8, 1 (the 3 after 5)", r.Writes, r.StaleWrites)
	}
	if row := r.Row("f", false, true); !strings.Contains(row, "| f | **no** | 0 | 0 | 1 |") {
		t.Errorf("Row = %q", row)
	}
}
