package chaos

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// An Overlap is two holders whose intervals overlap: Second obtained the
// lock while First could still rely on it.
type Overlap struct {
	First, Second Hold
	For           time.Duration // how long both held it
}

// A Recovery is how long after a fault's end the next holder got the lock.
type Recovery struct {
	Fault Fault
	// After is fault end → next Obtain returned (0 when a holder that
	// relies on the lock at the fault's end got it before); without one,
	// fault end → end of the history.
	After     time.Duration
	Recovered bool // a holder got the lock after the fault's end
}

// Report is what Check found in a history.
type Report struct {
	Acquisitions  int       // successful Obtain calls
	ObtainCalls   int       // all Obtain calls
	Violations    []Overlap // holders whose intervals overlap
	Writes        int       // writes to the fenced resource
	StaleWrites   int       // writes it rejected: a lower fence than one it had accepted
	DeadOnArrival int       // locks already past ValidUntil, or already Done, when Obtain returned
	Abandoned     int       // locks a crashed worker never released
	Losses        int       // locks whose Done closed before their holder called Release
	// LossesSignalledFirst counts the losses whose Done closed, or whose
	// ValidUntil passed, before the next holder's Obtain returned (or with
	// no next holder at all).
	LossesSignalledFirst int
	Recoveries           []Recovery
	// LongestFreeWithWaiters is the longest stretch, outside fault windows
	// and after the first acquisition, during which no holder held the key
	// and at least one worker was inside Obtain; FreeGapAt is when it
	// began.
	LongestFreeWithWaiters time.Duration
	FreeGapAt              time.Time
	// Held is how long some holder's key was in place (until its
	// BusyEnd), and Observed the stretch it is measured over: from the
	// first acquisition to the end of the history. Held/Observed is the
	// share of time the lock was held.
	Held, Observed time.Duration
	Span           time.Duration // the history's length
}

// Check reads a history and reports what it found. It is a pure function
// of the snapshot.
func Check(s Snapshot) Report {
	r := Report{ObtainCalls: len(s.Waits), Span: s.Stop.Sub(s.Start)}
	holds := slices.Clone(s.Holds)
	slices.SortStableFunc(holds, func(a, b Hold) int { return a.Acquired.Compare(b.Acquired) })
	r.Acquisitions = len(holds)

	// Safety: no two intervals overlap.
	var latest *Hold
	for i := range holds {
		h := &holds[i]
		if h.DeadOnArrival {
			r.DeadOnArrival++
		}
		if h.Abandoned {
			r.Abandoned++
		}
		end := h.SafeEnd()
		if !end.After(h.Acquired) {
			continue // an empty interval: never relied on
		}
		if latest != nil && h.Acquired.Before(latest.SafeEnd()) {
			r.Violations = append(r.Violations, Overlap{First: *latest, Second: *h, For: minTime(latest.SafeEnd(), end).Sub(h.Acquired)})
		}
		if latest == nil || end.After(latest.SafeEnd()) {
			latest = h
		}
	}

	// Losses, and whether Done closed before the next holder got in.
	for i, h := range holds {
		if !h.Lost() {
			continue
		}
		r.Losses++
		next := -1
		for j := i + 1; j < len(holds); j++ {
			if holds[j].Acquired.After(h.Acquired) {
				next = j
				break
			}
		}
		// The holder knows at ValidUntil, even when Done's timer fires a
		// little late on a loaded machine.
		signal := minTime(h.DoneAt, h.ValidUntil)
		if next < 0 || !signal.After(holds[next].Acquired) {
			r.LossesSignalledFirst++
		}
	}

	for _, w := range s.Writes {
		r.Writes++
		if !w.Accepted {
			r.StaleWrites++
		}
	}

	// Recovery: fault end → the next Obtain that returned a lock; none is
	// needed when someone holds the lock as the fault ends.
	faults := slices.Clone(s.Faults)
	slices.SortStableFunc(faults, func(a, b Fault) int { return a.Start.Compare(b.Start) })
	for _, f := range faults {
		rec := Recovery{Fault: f, After: s.Stop.Sub(f.End)}
		for _, h := range holds {
			if !h.Acquired.After(f.End) && h.SafeEnd().After(f.End) {
				rec.After, rec.Recovered = 0, true
				break
			}
			if !h.Acquired.Before(f.End) {
				rec.After, rec.Recovered = h.Acquired.Sub(f.End), true
				break
			}
		}
		r.Recoveries = append(r.Recoveries, rec)
	}

	r.LongestFreeWithWaiters, r.FreeGapAt, r.Held, r.Observed = freeWithWaiters(s, holds)
	return r
}

// HeldShare is the share of the observed time that the lock was held, in
// percent (0 without acquisitions).
func (r Report) HeldShare() float64 {
	if r.Observed <= 0 {
		return 0
	}
	return 100 * float64(r.Held) / float64(r.Observed)
}

// freeWithWaiters sweeps the history for the longest stretch, outside
// fault windows and after the first acquisition (before it, the clients
// are still connecting and loading scripts), in which no holder's key is
// in place (until its BusyEnd) while a worker is inside Obtain. It also
// returns how long some holder's key was in place over that time, and the
// time observed.
func freeWithWaiters(s Snapshot, holds []Hold) (longest time.Duration, longestAt time.Time, held, observed time.Duration) {
	if len(holds) == 0 {
		return 0, time.Time{}, 0, 0
	}
	from0 := maxTime(s.Start, holds[0].Acquired)
	type event struct {
		at               time.Time
		busy, wait, fail int
	}
	var ev []event
	add := func(from, to time.Time, busy, wait, fail int) {
		from, to = maxTime(from, from0), minTime(to, s.Stop)
		if !to.After(from) {
			return
		}
		ev = append(ev, event{from, busy, wait, fail}, event{to, -busy, -wait, -fail})
	}
	for _, h := range holds {
		add(h.Acquired, h.BusyEnd(), 1, 0, 0)
	}
	for _, w := range s.Waits {
		end := w.End
		if end.IsZero() {
			end = s.Stop
		}
		add(w.Start, end, 0, 1, 0)
	}
	for _, f := range s.Faults {
		add(f.Start, f.End, 0, 0, 1)
	}
	slices.SortStableFunc(ev, func(a, b event) int { return a.at.Compare(b.at) })

	var busy, wait, fail int
	var gapStart, busySince time.Time
	inGap := false
	for i := 0; i < len(ev); {
		at := ev[i].at
		if busy > 0 {
			held += at.Sub(busySince)
		}
		busySince = at
		for ; i < len(ev) && ev[i].at.Equal(at); i++ {
			busy += ev[i].busy
			wait += ev[i].wait
			fail += ev[i].fail
		}
		free := busy == 0 && wait > 0 && fail == 0
		switch {
		case free && !inGap:
			inGap, gapStart = true, at
		case !free && inGap:
			inGap = false
			if d := at.Sub(gapStart); d > longest {
				longest, longestAt = d, gapStart
			}
		}
	}
	if inGap { // cannot happen: every interval ends by s.Stop
		if d := s.Stop.Sub(gapStart); d > longest {
			longest, longestAt = d, gapStart
		}
	}
	if s.Stop.After(from0) {
		observed = s.Stop.Sub(from0)
	}
	return longest, longestAt, held, observed
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// MaxRecovery returns the longest recovery and whether every fault was
// followed by a holder.
func (r Report) MaxRecovery() (time.Duration, bool) {
	var longest time.Duration
	all := true
	for _, rec := range r.Recoveries {
		longest = max(longest, rec.After)
		all = all && rec.Recovered
	}
	return longest, all
}

// TableHeader is the header of the results table that Row fills, as the
// docs/faults.md ("Under faults") shows it.
const TableHeader = "| scenario | claimed safe | acquisitions | violations | stale fenced writes | losses signalled before the next holder | recovery (fault end → next holder) | longest free with waiters | dead on arrival |\n" +
	"|---|---|--:|--:|--:|--:|---|--:|--:|"

// Row renders r as one row of the results table.
func (r Report) Row(scenario string, claimedSafe bool, fenced bool) string {
	safe := "yes"
	if !claimedSafe {
		safe = "**no**"
	}
	stale := "—"
	if fenced {
		stale = fmt.Sprint(r.StaleWrites)
	}
	losses := "—"
	if r.Losses > 0 {
		losses = fmt.Sprintf("%d of %d", r.LossesSignalledFirst, r.Losses)
	}
	return fmt.Sprintf("| %s | %s | %d | %d | %s | %s | %s | %s | %d |",
		scenario, safe, r.Acquisitions, len(r.Violations), stale, losses, r.recoveryCell(), Dur(r.LongestFreeWithWaiters), r.DeadOnArrival)
}

func (r Report) recoveryCell() string {
	if len(r.Recoveries) == 0 {
		return "—"
	}
	var got []time.Duration
	never := 0
	var neverFor time.Duration
	for _, rec := range r.Recoveries {
		if rec.Recovered {
			got = append(got, rec.After)
		} else {
			never++
			neverFor = max(neverFor, rec.After)
		}
	}
	n := len(r.Recoveries)
	var parts []string
	if len(got) > 0 {
		lo, hi := slices.Min(got), slices.Max(got)
		s := Dur(hi)
		if lo != hi {
			s = Dur(lo) + "–" + Dur(hi)
		}
		parts = append(parts, s)
	}
	if never > 0 {
		parts = append(parts, fmt.Sprintf("%d never (%s left)", never, Dur(neverFor)))
	}
	faults := "fault"
	if n > 1 {
		faults = "faults"
	}
	return fmt.Sprintf("%s (%d %s)", strings.Join(parts, "; "), n, faults)
}

// Dur renders d for the table: milliseconds below a second, else seconds
// with one decimal.
func Dur(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// Describe lists the violations, for a test's log.
func (r Report) Describe(base time.Time) string {
	var b strings.Builder
	vs := slices.Clone(r.Violations)
	slices.SortFunc(vs, func(a, b Overlap) int { return cmp.Compare(b.For, a.For) })
	for i, v := range vs {
		if i == 5 {
			fmt.Fprintf(&b, "  ... and %d more\n", len(vs)-i)
			break
		}
		fmt.Fprintf(&b, "  %s (fence %d, from %v, until %v, %v) and %s (fence %d, from %v) held it together for %v\n",
			v.First.Worker, v.First.Fence, v.First.Acquired.Sub(base).Round(time.Millisecond), v.First.SafeEnd().Sub(base).Round(time.Millisecond), v.First.Cause,
			v.Second.Worker, v.Second.Fence, v.Second.Acquired.Sub(base).Round(time.Millisecond), v.For.Round(time.Microsecond))
	}
	return b.String()
}
