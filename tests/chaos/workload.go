package chaos

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/relock-go/relock"
)

// A Locker obtains leases on a key. relock's Client is one (through
// RelockLocker); the checker's own tests use deliberately broken ones.
type Locker interface {
	Obtain(ctx context.Context, key string, ttl time.Duration) (Lease, error)
}

// A Lease is an obtained lock, as *relock.Lock offers it.
type Lease interface {
	// Done closes when the lease ends: released, lost, past its validity.
	Done() <-chan struct{}
	// Err says why Done closed; it matches relock.ErrNotHeld when the key
	// was found gone or someone else's.
	Err() error
	// ValidUntil is until when the holder may rely on the lease.
	ValidUntil() time.Time
	// Fence is the lease's fencing number (0 without fencing).
	Fence() int64
	// Release gives the lease up.
	Release(ctx context.Context) error
}

// RelockLocker obtains relock locks through Client with Options.
type RelockLocker struct {
	Client  *relock.Client
	Options []relock.Option
}

// Obtain calls Client.Obtain with the locker's options.
func (l RelockLocker) Obtain(ctx context.Context, key string, ttl time.Duration) (Lease, error) {
	lock, err := l.Client.Obtain(ctx, key, ttl, l.Options...)
	if err != nil {
		return nil, err
	}
	return lock, nil
}

// A Worker is one contender: a name for the history and its Locker.
type Worker struct {
	Name   string
	Locker Locker
}

// Workload is the contention of a scenario: workers that, again and again,
// obtain Key (each Obtain bounded by ObtainTimeout), write to the fenced
// resource (when Fenced), hold it for HoldMin to HoldMax (one hold in
// LongEvery, if set, for LongMin to LongMax instead, long enough for the
// auto-refresh to run), write again and release it, all recorded in
// History.
type Workload struct {
	Key              string
	TTL              time.Duration
	ObtainTimeout    time.Duration // deadline of each Obtain
	HoldMin, HoldMax time.Duration
	LongEvery        int // 0: no long holds
	LongMin, LongMax time.Duration
	ReleaseTimeout   time.Duration // deadline of each Release; 0 means 1 s
	Fenced           bool          // write each hold's fence to the resource
	Workers          []Worker
	History          *History

	watchers sync.WaitGroup // one per lease, until its Done closes
}

// Run runs every worker until ctx ends, then waits until each has released
// what it held and each lease has ended, and stops the history.
func (w *Workload) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, wk := range w.Workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				w.cycle(ctx, wk, w.holdTime(), nil)
			}
		})
	}
	wg.Wait()
	w.History.Stop()
	w.watchers.Wait()
}

// Cycle runs one obtain-hold-release cycle of wk, outside Run (a newcomer,
// a crashing holder), recorded in the same history. With abandon, the
// worker crashes instead of releasing: Cycle calls abandon (which should
// close the worker's clients, never release), and the hold is recorded as
// abandoned. It returns the hold, or nil when Obtain failed.
func (w *Workload) Cycle(ctx context.Context, wk Worker, hold time.Duration, abandon func()) *Hold {
	return w.cycle(ctx, wk, hold, abandon)
}

// Wait waits until every lease recorded by Cycle has ended.
func (w *Workload) Wait() { w.watchers.Wait() }

func (w *Workload) holdTime() time.Duration {
	lo, hi := w.HoldMin, w.HoldMax
	if w.LongEvery > 0 && rand.N(w.LongEvery) == 0 {
		lo, hi = w.LongMin, w.LongMax
	}
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo)
}

func (w *Workload) cycle(ctx context.Context, wk Worker, hold time.Duration, abandon func()) *Hold {
	h := w.History
	octx, cancel := context.WithTimeout(ctx, w.ObtainTimeout)
	wait := h.BeginWait(wk.Name, time.Now())
	lease, err := wk.Locker.Obtain(octx, w.Key, w.TTL)
	now := time.Now()
	cancel()
	h.EndWait(wait, now, err)
	if err != nil {
		if ctx.Err() == nil && octx.Err() == nil {
			// Failed at once (a refused connection, too few replicas):
			// do not spin.
			sleep(ctx, 10*time.Millisecond+rand.N(20*time.Millisecond))
		}
		return nil
	}
	rec := &Hold{Worker: wk.Name, Acquired: now, TTL: w.TTL, Fence: lease.Fence(), ValidUntil: lease.ValidUntil()}
	select {
	case <-lease.Done():
		rec.DeadOnArrival = true
	default:
		rec.DeadOnArrival = !rec.ValidUntil.After(now)
	}
	h.AddHold(rec)
	w.watchers.Go(func() {
		<-lease.Done()
		at := time.Now()
		cause := lease.Err()
		until := lease.ValidUntil()
		h.Update(func() {
			rec.SawDone(at)
			rec.Cause, rec.ValidUntil = cause, until
			rec.KeyGone = errors.Is(cause, relock.ErrNotHeld)
		})
	})

	// A careful holder writes only while Done is open and ValidUntil has
	// not passed (Done's timer may fire late on a loaded machine).
	write := func() {
		select {
		case <-lease.Done():
		default:
			if w.Fenced {
				h.WriteFencedBefore(wk.Name, rec.Fence, lease.ValidUntil())
			}
		}
	}
	write()
	t := time.NewTimer(hold)
	select {
	case <-t.C:
	case <-lease.Done():
	case <-ctx.Done():
	}
	t.Stop()
	write()
	select {
	case <-lease.Done():
		at := time.Now()
		h.Update(func() { rec.SawDone(at); rec.EndedFirst = true })
	default:
	}

	if abandon != nil {
		at := time.Now()
		h.Update(func() { rec.Abandoned, rec.Abandon = true, at })
		abandon()
		return rec
	}
	called := time.Now()
	timeout := w.ReleaseTimeout
	if timeout <= 0 {
		timeout = time.Second
	}
	rctx, rcancel := context.WithTimeout(context.Background(), timeout)
	err = lease.Release(rctx)
	rcancel()
	h.Update(func() { rec.ReleaseCalled, rec.ReleaseErr = called, err })
	return rec
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
