package chaos

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/relock-go/relock"
)

// RWLocker obtains read locks (Write false) or write locks of a relock
// read-write lock (Client.RWLock(key)) with Options, for the read-write
// workload: its workers share one Workload and History, and CheckRW reads
// the history with the read-write rule.
type RWLocker struct {
	Client  *relock.Client
	Write   bool
	Options []relock.Option
}

// Obtain takes a read or the write lock of the read-write lock named key.
func (l RWLocker) Obtain(ctx context.Context, key string, ttl time.Duration) (Lease, error) {
	rw := l.Client.RWLock(key, l.Options...)
	var lock *relock.Lock
	var err error
	if l.Write {
		lock, err = rw.ObtainWrite(ctx, ttl)
	} else {
		lock, err = rw.ObtainRead(ctx, ttl)
	}
	if err != nil {
		return nil, err
	}
	return lock, nil
}

// WriterPrefix starts the name of every writer of a read-write workload;
// the other workers are readers.
const WriterPrefix = "writer-"

// IsWriter reports whether a worker of a read-write workload is a writer.
func IsWriter(worker string) bool { return strings.HasPrefix(worker, WriterPrefix) }

// RWReport is what CheckRW found in a read-write history.
type RWReport struct {
	// Violations are the pairs of holds, one of them a writer's, whose
	// intervals (Acquired to SafeEnd) overlap.
	Violations []Overlap
	// ReaderOverlaps counts the pairs of readers' holds that overlap: the
	// readers' concurrency, which must be there.
	ReaderOverlaps int
	Reads, Writes  int // acquisitions of each kind
	// Losses and LossesSignalledFirst: as in Report, where "the next
	// holder" is the next one that conflicts (a writer, or any holder
	// after a lost writer).
	Losses, LossesSignalledFirst int
}

// CheckRW reads a read-write history: no writer's interval overlaps any
// other holder's; readers' may overlap each other. It is a pure function of
// the snapshot; Check still gives the other measures (stale fenced writes,
// recoveries), but its Violations do not apply to readers.
func CheckRW(s Snapshot) RWReport {
	var r RWReport
	holds := slices.Clone(s.Holds)
	slices.SortStableFunc(holds, func(a, b Hold) int { return a.Acquired.Compare(b.Acquired) })
	conflict := func(a, b *Hold) bool { return IsWriter(a.Worker) || IsWriter(b.Worker) }
	for i := range holds {
		a := &holds[i]
		if IsWriter(a.Worker) {
			r.Writes++
		} else {
			r.Reads++
		}
		end := a.SafeEnd()
		if !end.After(a.Acquired) {
			continue // never relied on
		}
		for j := i + 1; j < len(holds); j++ {
			b := &holds[j]
			if !b.Acquired.Before(end) {
				break // sorted by Acquired: no later one overlaps a
			}
			if !b.SafeEnd().After(b.Acquired) {
				continue
			}
			if conflict(a, b) {
				r.Violations = append(r.Violations, Overlap{First: *a, Second: *b, For: minTime(end, b.SafeEnd()).Sub(b.Acquired)})
			} else {
				r.ReaderOverlaps++
			}
		}
	}
	for i := range holds {
		h := &holds[i]
		if !h.Lost() {
			continue
		}
		r.Losses++
		next := -1
		for j := i + 1; j < len(holds); j++ {
			if holds[j].Acquired.After(h.Acquired) && conflict(h, &holds[j]) {
				next = j
				break
			}
		}
		signal := minTime(h.DoneAt, h.ValidUntil)
		if next < 0 || !signal.After(holds[next].Acquired) {
			r.LossesSignalledFirst++
		}
	}
	return r
}
