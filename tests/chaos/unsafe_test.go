package chaos_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/tests/chaos"
)

// store is one in-memory lock key with a fencing counter: the backend of
// the fake lockers below.
type store struct {
	mu      sync.Mutex
	token   string
	expires time.Time
	fence   int64
	next    int
}

// fakeLocker locks the store. The safe one checks the token on release and
// refresh and ends a lease at its validity. The broken ones do what the
// checker must catch:
//   - releaseAny: release deletes the key whoever holds it, and the lease
//     knows no validity (a holder that runs late releases late);
//   - refreshAny: refresh re-creates the key with our token even after it
//     expired, and the lease believes every refresh.
//
// Leases refresh every TTL/3, after a pause now and then that outlasts the
// TTL (a GC pause, a stalled process).
type fakeLocker struct {
	s                      *store
	releaseAny, refreshAny bool
	refresh                bool
}

func (l *fakeLocker) Obtain(ctx context.Context, key string, ttl time.Duration) (chaos.Lease, error) {
	for {
		now := time.Now()
		l.s.mu.Lock()
		if l.s.token == "" || !now.Before(l.s.expires) {
			l.s.next++
			l.s.fence++
			tok := fmt.Sprint(l.s.next)
			l.s.token, l.s.expires = tok, now.Add(ttl)
			fence := l.s.fence
			l.s.mu.Unlock()
			return l.lease(tok, fence, now, ttl), nil
		}
		l.s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("fake: %w: %w", relock.ErrNotObtained, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

func (l *fakeLocker) lease(tok string, fence int64, at time.Time, ttl time.Duration) *fakeLease {
	ls := &fakeLease{l: l, tok: tok, fence: fence, ttl: ttl, done: make(chan struct{}), stop: make(chan struct{}), stopped: make(chan struct{})}
	ls.valid = at.Add(ttl - chaos.KeyExpiryMargin(ttl))
	if !l.releaseAny && !l.refreshAny {
		ls.expiry = time.AfterFunc(time.Until(ls.valid), func() { ls.end(relock.ErrLost) })
	}
	if l.refresh {
		go ls.autoRefresh()
	} else {
		close(ls.stopped)
	}
	return ls
}

type fakeLease struct {
	l       *fakeLocker
	tok     string
	fence   int64
	ttl     time.Duration
	expiry  *time.Timer
	stop    chan struct{}
	stopped chan struct{}

	mu    sync.Mutex
	valid time.Time
	done  chan struct{}
	err   error
}

func (ls *fakeLease) end(err error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.err == nil {
		ls.err = err
		close(ls.done)
	}
}

func (ls *fakeLease) Done() <-chan struct{} { return ls.done }
func (ls *fakeLease) Fence() int64          { return ls.fence }

func (ls *fakeLease) Err() error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.err
}

func (ls *fakeLease) ValidUntil() time.Time {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.valid
}

func (ls *fakeLease) autoRefresh() {
	defer close(ls.stopped)
	for {
		wait := ls.ttl / 3
		if rand.N(4) == 0 {
			wait = ls.ttl * 3 / 2 // a pause longer than the TTL
		}
		select {
		case <-ls.stop:
			return
		case <-ls.done:
			return
		case <-time.After(wait):
		}
		now := time.Now()
		s := ls.l.s
		s.mu.Lock()
		ours := s.token == ls.tok && now.Before(s.expires)
		if ours || ls.l.refreshAny {
			s.token, s.expires = ls.tok, now.Add(ls.ttl)
		}
		s.mu.Unlock()
		if !ours && !ls.l.refreshAny {
			ls.end(fmt.Errorf("fake: %w: %w", relock.ErrLost, relock.ErrNotHeld))
			return
		}
		ls.mu.Lock()
		ls.valid = now.Add(ls.ttl - chaos.KeyExpiryMargin(ls.ttl))
		if ls.expiry != nil && ls.err == nil {
			ls.expiry.Reset(time.Until(ls.valid))
		}
		ls.mu.Unlock()
	}
}

func (ls *fakeLease) Release(context.Context) error {
	close(ls.stop)
	<-ls.stopped
	if ls.expiry != nil {
		ls.expiry.Stop()
	}
	s := ls.l.s
	s.mu.Lock()
	ours := s.token == ls.tok && time.Now().Before(s.expires)
	if ours || ls.l.releaseAny {
		s.token = ""
	}
	s.mu.Unlock()
	if !ours && !ls.l.releaseAny {
		ls.end(fmt.Errorf("fake: %w", relock.ErrNotHeld))
		return relock.ErrNotHeld
	}
	ls.end(relock.ErrReleased)
	return nil
}

// runFake runs 4 workers over one fake locker for d and checks the history.
func runFake(t *testing.T, l *fakeLocker, d time.Duration) chaos.Report {
	t.Helper()
	h := chaos.NewHistory()
	wl := &chaos.Workload{Key: "k", TTL: 30 * time.Millisecond, ObtainTimeout: time.Second,
		HoldMin: 10 * time.Millisecond, HoldMax: 60 * time.Millisecond, Fenced: true, History: h}
	for i := range 4 {
		wl.Workers = append(wl.Workers, chaos.Worker{Name: fmt.Sprint("w", i), Locker: l})
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	wl.Run(ctx)
	r := chaos.Check(h.Snapshot())
	t.Logf("%s\n%s", r.Row(t.Name(), true, true), r.Describe(h.Snapshot().Start))
	return r
}

// runFakeUntil runs runFake in rounds of a second, each on a new locker,
// until found says a round showed what the test looks for, for at most
// ten rounds: how soon a broken locker breaks depends on scheduling, which
// a loaded machine changes. It returns every round's report.
func runFakeUntil(t *testing.T, newLocker func() *fakeLocker, found func(chaos.Report) bool) []chaos.Report {
	t.Helper()
	var rs []chaos.Report
	for range 10 {
		r := runFake(t, newLocker(), time.Second)
		rs = append(rs, r)
		if found(r) {
			break
		}
	}
	return rs
}

// TestCheckerCatchesUnsafeLockers runs the checker over lockers that are
// broken on purpose: it must report their overlaps, and none for the safe
// one that pauses the same way.
func TestCheckerCatchesUnsafeLockers(t *testing.T) {
	t.Run("safe", func(t *testing.T) {
		rs := runFakeUntil(t, func() *fakeLocker { return &fakeLocker{s: &store{}, refresh: true} },
			func(r chaos.Report) bool { return r.Losses > 0 })
		for _, r := range rs {
			if len(r.Violations) != 0 || r.StaleWrites != 0 {
				t.Errorf("violations %d, stale writes %d on the safe locker; want none", len(r.Violations), r.StaleWrites)
			}
			if r.LossesSignalledFirst != r.Losses {
				t.Errorf("losses %d, signalled first %d; want all signalled", r.Losses, r.LossesSignalledFirst)
			}
		}
		if last := rs[len(rs)-1]; last.Losses == 0 {
			t.Errorf("no losses in %d rounds; want some (its pauses outlast the TTL)", len(rs))
		}
	})
	t.Run("release without a token check", func(t *testing.T) {
		rs := runFakeUntil(t, func() *fakeLocker { return &fakeLocker{s: &store{}, releaseAny: true} },
			func(r chaos.Report) bool { return len(r.Violations) > 0 })
		if len(rs[len(rs)-1].Violations) == 0 {
			t.Errorf("no violations reported in %d rounds for a release that deletes another holder's key", len(rs))
		}
	})
	t.Run("refresh that re-creates an expired key", func(t *testing.T) {
		violations, stale := false, false
		runFakeUntil(t, func() *fakeLocker { return &fakeLocker{s: &store{}, refreshAny: true, refresh: true} },
			func(r chaos.Report) bool {
				violations = violations || len(r.Violations) > 0
				stale = stale || r.StaleWrites > 0
				return violations && stale
			})
		if !violations {
			t.Error("no violations reported for a refresh that takes the key back")
		}
		if !stale {
			t.Error("no stale writes: a holder that took the key back wrote with its old fence after a newer holder")
		}
	})
}

// TestCycleAbandon checks the record of a crashed holder: abandoned, not a
// loss, its interval ending at the crash, its key busy until it expires.
func TestCycleAbandon(t *testing.T) {
	h := chaos.NewHistory()
	wl := &chaos.Workload{Key: "k", TTL: 40 * time.Millisecond, ObtainTimeout: time.Second, History: h}
	l := &fakeLocker{s: &store{}}
	var lease chaos.Lease
	crashed := false
	wk := chaos.Worker{Name: "crasher", Locker: lockerFunc(func(ctx context.Context, key string, ttl time.Duration) (chaos.Lease, error) {
		var err error
		lease, err = l.Obtain(ctx, key, ttl)
		return lease, err
	})}
	hold := wl.Cycle(context.Background(), wk, 5*time.Millisecond, func() {
		crashed = true
		// A crash ends the lease without a release: here, its validity
		// runs out.
	})
	if hold == nil || !crashed {
		t.Fatalf("Cycle returned %v, crashed %v", hold, crashed)
	}
	<-lease.Done()
	wl.Wait()
	h.Stop()
	s := h.Snapshot()
	got := s.Holds[0]
	if !got.Abandoned || got.Lost() || !got.ReleaseCalled.IsZero() || !got.SafeEnd().Equal(got.Abandon) {
		t.Errorf("crashed hold recorded as %+v", got)
	}
	if want := got.ValidUntil.Add(chaos.KeyExpiryMargin(40 * time.Millisecond)); !got.BusyEnd().Equal(want) {
		t.Errorf("BusyEnd = %v, want ValidUntil + margin = %v", got.BusyEnd(), want)
	}
	if r := chaos.Check(s); r.Abandoned != 1 || r.Losses != 0 || r.Acquisitions != 1 {
		t.Errorf("report %+v", r)
	}
}

type lockerFunc func(ctx context.Context, key string, ttl time.Duration) (chaos.Lease, error)

func (f lockerFunc) Obtain(ctx context.Context, key string, ttl time.Duration) (chaos.Lease, error) {
	return f(ctx, key, ttl)
}
