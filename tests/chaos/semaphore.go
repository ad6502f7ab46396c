package chaos

import (
	"context"
	"slices"
	"time"

	"github.com/relock-go/relock"
)

// SemaphoreLocker obtains permits of the semaphore named by the key, with N
// permits, through Client with Options: the Workload's leases are then
// permits, and CheckPermits, not Check's overlap test, judges the history.
type SemaphoreLocker struct {
	Client  *relock.Client
	N       int
	Options []relock.Option
}

// Obtain calls Semaphore.Obtain with the locker's options.
func (l SemaphoreLocker) Obtain(ctx context.Context, key string, ttl time.Duration) (Lease, error) {
	p, err := l.Client.Semaphore(key, l.N).Obtain(ctx, ttl, l.Options...)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// PermitReport is what CheckPermits found in a history of permits.
type PermitReport struct {
	Acquisitions int
	// MaxHolders is the most holds whose intervals (Acquired to SafeEnd)
	// share an instant, and MaxAt the first instant with that many.
	MaxHolders int
	MaxAt      time.Time
	// Excess lists the holds of each instant at which more than the limit
	// overlapped (the first such instant of each excess stretch).
	Excess [][]Hold
	// DuplicateFences counts holds whose fencing number (not 0) an
	// earlier hold had: every permit's must be its own.
	DuplicateFences int
}

// CheckPermits reads a history of permits of a semaphore with limit n: at
// no instant may more than n holders rely on a permit. A hold's interval
// is Check's: from when Obtain returned to the earliest of Release called,
// Done closed, the crash and ValidUntil. Intervals that only touch do not
// overlap. It is a pure function of the snapshot.
func CheckPermits(s Snapshot, n int) PermitReport {
	r := PermitReport{Acquisitions: len(s.Holds)}
	fences := map[int64]bool{}
	for _, h := range s.Holds {
		if h.Fence != 0 {
			if fences[h.Fence] {
				r.DuplicateFences++
			}
			fences[h.Fence] = true
		}
	}
	type event struct {
		at    time.Time
		start bool
		i     int
	}
	var evs []event
	for i, h := range s.Holds {
		if end := h.SafeEnd(); end.After(h.Acquired) {
			evs = append(evs, event{h.Acquired, true, i}, event{end, false, i})
		}
	}
	// Ends before starts at one instant.
	slices.SortStableFunc(evs, func(a, b event) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		switch {
		case a.start == b.start:
			return 0
		case a.start:
			return 1
		}
		return -1
	})
	live := map[int]bool{}
	over := false
	for _, e := range evs {
		if !e.start {
			delete(live, e.i)
			if len(live) <= n {
				over = false
			}
			continue
		}
		live[e.i] = true
		if len(live) > r.MaxHolders {
			r.MaxHolders, r.MaxAt = len(live), e.at
		}
		if len(live) > n && !over {
			over = true
			var hs []Hold
			for i := range live {
				hs = append(hs, s.Holds[i])
			}
			slices.SortFunc(hs, func(a, b Hold) int { return a.Acquired.Compare(b.Acquired) })
			r.Excess = append(r.Excess, hs)
		}
	}
	return r
}
