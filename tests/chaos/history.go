package chaos

import (
	"sync"
	"time"
)

// A Wait is one Obtain call of a worker.
type Wait struct {
	Worker     string
	Start, End time.Time // when Obtain was called and returned; End is zero while it runs
	OK         bool      // Obtain returned a lock
	Err        error     // Obtain's error, when it failed
}

// A Hold is one acquisition: a lock a worker obtained, from the moment
// Obtain returned until it ended. Its fields are filled in as the worker
// and the lock go on; read them from a [History.Snapshot].
type Hold struct {
	Worker   string
	Acquired time.Time     // Obtain returned
	TTL      time.Duration // the TTL asked for
	Fence    int64         // the lock's fencing number (0 without fencing)
	// DeadOnArrival: when Obtain returned, ValidUntil had already passed or
	// Done was already closed.
	DeadOnArrival bool

	ReleaseCalled time.Time // when the worker called Release; zero if it never did
	ReleaseErr    error     // what Release returned
	Abandoned     bool      // the worker crashed on purpose: it never released
	Abandon       time.Time // when it crashed

	DoneAt     time.Time // when Done was first seen closed; zero if it never was
	EndedFirst bool      // Done had closed before the worker called Release (or crashed)
	Cause      error     // the lock's Err after Done closed
	KeyGone    bool      // the lock ended because its key was found gone or another's (ErrNotHeld)
	ValidUntil time.Time // the lock's last ValidUntil, read when Done closed (or at Acquired)
}

// Released reports whether the worker called Release and it succeeded.
func (h *Hold) Released() bool { return !h.ReleaseCalled.IsZero() && h.ReleaseErr == nil }

// SafeEnd is the end of the holder's interval: the earliest of Release
// called, Done closed and ValidUntil. After it the holder no longer relies
// on the lock.
func (h *Hold) SafeEnd() time.Time {
	end := h.ValidUntil
	for _, t := range []time.Time{h.ReleaseCalled, h.DoneAt, h.Abandon} {
		if !t.IsZero() && t.Before(end) {
			end = t
		}
	}
	return end
}

// Lost reports whether the lock ended under the worker: Done closed before
// the worker called Release (a crash does not count).
func (h *Hold) Lost() bool {
	if h.Abandoned || h.DoneAt.IsZero() {
		return false
	}
	return h.EndedFirst || h.ReleaseCalled.IsZero() || h.DoneAt.Before(h.ReleaseCalled)
}

// SawDone records that Done was seen closed at at, keeping the earliest
// sighting. Call it through History.Update.
func (h *Hold) SawDone(at time.Time) {
	if h.DoneAt.IsZero() || at.Before(h.DoneAt) {
		h.DoneAt = at
	}
}

// KeyExpiryMargin is how long after a lock's ValidUntil its key is taken
// to expire in Redis, for a lock nobody released: relock's drift margin
// (TTL/100 + 2 ms), which ValidUntil subtracts from the key's lifetime.
func KeyExpiryMargin(ttl time.Duration) time.Duration { return ttl/100 + 2*time.Millisecond }

// BusyEnd estimates when the key stopped being this holder's in Redis, for
// the liveness measures: Release called, for a release that succeeded;
// Done closed, for a lock whose key was found gone or another's; otherwise
// (a crash, a lapsed lock, a release that failed) ValidUntil plus the
// expiry margin, when its key expires by itself.
func (h *Hold) BusyEnd() time.Time {
	switch {
	case h.Released() && !h.Lost():
		return h.ReleaseCalled
	case h.KeyGone && !h.DoneAt.IsZero():
		return h.DoneAt
	}
	return h.ValidUntil.Add(KeyExpiryMargin(h.TTL))
}

// A Fault is a window during which a fault was in force. An instant fault
// (a connection kill) has End equal to Start.
type Fault struct {
	Name       string
	Start, End time.Time
}

// A Write is one write to the fenced resource.
type Write struct {
	Worker   string
	Fence    int64
	At       time.Time
	Accepted bool
}

// History records what the workers of one scenario saw. It also is the
// fenced resource they write to (WriteFenced). It is safe for concurrent
// use.
type History struct {
	mu           sync.Mutex
	start        time.Time
	stop         time.Time
	waits        []*Wait
	holds        []*Hold
	faults       []Fault
	writes       []Write
	maxFence     int64
	lastAcquired time.Time
}

// NewHistory returns an empty history that starts now.
func NewHistory() *History { return &History{start: time.Now()} }

// Stop marks the end of the observed period: the checker looks at nothing
// later. Calls after the first do nothing.
func (h *History) Stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stop.IsZero() {
		h.stop = time.Now()
	}
}

// BeginWait records that worker called Obtain at start.
func (h *History) BeginWait(worker string, start time.Time) *Wait {
	w := &Wait{Worker: worker, Start: start}
	h.mu.Lock()
	h.waits = append(h.waits, w)
	h.mu.Unlock()
	return w
}

// EndWait records that the Obtain call w returned at end, with err.
func (h *History) EndWait(w *Wait, end time.Time, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w.End, w.OK, w.Err = end, err == nil, err
}

// AddHold records an acquisition. The caller keeps filling it in through
// Update.
func (h *History) AddHold(hold *Hold) {
	h.mu.Lock()
	h.holds = append(h.holds, hold)
	if hold.Acquired.After(h.lastAcquired) {
		h.lastAcquired = hold.Acquired
	}
	h.mu.Unlock()
}

// Update runs fn with the history locked, to change a Hold or Wait it
// recorded.
func (h *History) Update(fn func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fn()
}

// LastAcquired returns when the latest hold was acquired (zero if none
// was).
func (h *History) LastAcquired() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastAcquired
}

// AddFault records a fault window.
func (h *History) AddFault(name string, start, end time.Time) {
	h.mu.Lock()
	h.faults = append(h.faults, Fault{Name: name, Start: start, End: end})
	h.mu.Unlock()
}

// WriteFenced is the fenced resource: it accepts the write of worker with
// fence when fence is at least the highest fence it has accepted, and
// reports whether it did. Rejected writes are stale.
func (h *History) WriteFenced(worker string, fence int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.writeLocked(worker, fence)
}

// WriteFencedBefore is WriteFenced by a careful holder: it writes only if
// the clock, read once the resource is locked, is still before validUntil
// (the holder's lease), and reports whether it wrote and whether the
// write was accepted. Checking inside the lock keeps a holder that was
// descheduled between its own check and the write from counting as stale.
func (h *History) WriteFencedBefore(worker string, fence int64, validUntil time.Time) (wrote, accepted bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !time.Now().Before(validUntil) {
		return false, false
	}
	return true, h.writeLocked(worker, fence)
}

func (h *History) writeLocked(worker string, fence int64) bool {
	ok := fence >= h.maxFence
	if ok {
		h.maxFence = fence
	}
	h.writes = append(h.writes, Write{Worker: worker, Fence: fence, At: time.Now(), Accepted: ok})
	return ok
}

// Snapshot is a copy of a History's records, for the checker.
type Snapshot struct {
	Start, Stop time.Time
	Waits       []Wait
	Holds       []Hold
	Faults      []Fault
	Writes      []Write
}

// Snapshot copies the records. Stop, if not yet called, counts as now.
func (h *History) Snapshot() Snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := Snapshot{Start: h.start, Stop: h.stop, Faults: append([]Fault(nil), h.faults...), Writes: append([]Write(nil), h.writes...)}
	if s.Stop.IsZero() {
		s.Stop = time.Now()
	}
	for _, w := range h.waits {
		s.Waits = append(s.Waits, *w)
	}
	for _, hd := range h.holds {
		s.Holds = append(s.Holds, *hd)
	}
	return s
}
