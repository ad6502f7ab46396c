package relock_test

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/internal/testkit/memdriver"
)

type ctxKey string

// ctxEvent is one call of ObserveContext: the event, and the context's
// values under the keys "caller", "lock" and "call".
type ctxEvent struct {
	kind               relock.EventKind
	caller, lock, call any
	err                error
}

// ctxRecorder is a ContextObserver that keeps what it was given and marks
// the contexts it returns: "lock" for a lock (EventObtained), "call" with a
// number for a refresh or release.
type ctxRecorder struct {
	mu     sync.Mutex
	events []ctxEvent
	calls  int
	plain  int // calls of Observe
}

func (r *ctxRecorder) Observe(relock.Event) {
	r.mu.Lock()
	r.plain++
	r.mu.Unlock()
}

func (r *ctxRecorder) ObserveContext(ctx context.Context, e relock.Event) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ctxEvent{e.Kind, ctx.Value(ctxKey("caller")), ctx.Value(ctxKey("lock")), ctx.Value(ctxKey("call")), e.Err})
	switch e.Kind {
	case relock.EventObtained:
		return context.WithValue(ctx, ctxKey("lock"), e.Key)
	case relock.EventRefreshing, relock.EventReleasing:
		r.calls++
		return context.WithValue(ctx, ctxKey("call"), r.calls)
	}
	return nil // nil means ctx
}

func (r *ctxRecorder) all() []ctxEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *ctxRecorder) waitFor(t *testing.T, kind relock.EventKind) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range r.all() {
			if e.kind == kind {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no %v within 10s: %v", kind, r.all())
}

// checkPairs checks that every EventRefreshing and EventReleasing is
// followed by one EventDone of the same call, that the events between have
// that call's context, and that all events after EventObtained have the
// lock's context.
func checkPairs(t *testing.T, evs []ctxEvent, lock string) {
	t.Helper()
	var open any
	for i, e := range evs {
		if i > 0 && e.lock != lock {
			t.Errorf("event %d (%v) has lock context %v, want %q", i, e.kind, e.lock, lock)
		}
		switch e.kind {
		case relock.EventRefreshing, relock.EventReleasing:
			if open != nil {
				t.Errorf("event %d: %v inside call %v", i, e.kind, open)
			}
			if e.call != nil {
				t.Errorf("event %d: %v given a call context %v, want the lock's", i, e.kind, e.call)
			}
			open = callAfter(evs, i)
		case relock.EventDone:
			if open == nil || e.call != open {
				t.Errorf("event %d: done of call %v, open call %v", i, e.call, open)
			}
			open = nil
		default:
			if open != nil && e.call != open {
				t.Errorf("event %d (%v) during call %v has call context %v", i, e.kind, open, e.call)
			}
		}
	}
	if open != nil {
		t.Errorf("call %v never done: %v", open, evs)
	}
}

// callAfter returns the call context of the event after i (the call that
// evs[i] began).
func callAfter(evs []ctxEvent, i int) any {
	if i+1 < len(evs) {
		return evs[i+1].call
	}
	return nil
}

func kindsOf(evs []ctxEvent) []relock.EventKind {
	var ks []relock.EventKind
	for _, e := range evs {
		ks = append(ks, e.kind)
	}
	return ks
}

// A ContextObserver gets the caller's context for the obtain, its own
// lock context for the lock's events, and a call context around each
// refresh and release, closed by exactly one EventDone; Observe is never
// called.
func TestContextObserverContexts(t *testing.T) {
	rec := &ctxRecorder{}
	c, err := relock.New(memdriver.New().Conn(), relock.WithObserver(rec))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.WithValue(context.Background(), ctxKey("caller"), "obtain")
	l, err := c.Obtain(ctx, "ctxobs:one", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	rctx := context.WithValue(context.Background(), ctxKey("caller"), "refresh")
	if err := l.Refresh(rctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(rctx); err != nil {
		t.Fatal(err)
	}
	evs := rec.all()
	want := []relock.EventKind{relock.EventObtained,
		relock.EventRefreshing, relock.EventRefreshed, relock.EventDone,
		relock.EventReleasing, relock.EventReleased, relock.EventDone}
	if got := kindsOf(evs); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if evs[0].caller != "obtain" || evs[0].lock != nil {
		t.Errorf("EventObtained context: caller %v lock %v, want the Obtain caller's", evs[0].caller, evs[0].lock)
	}
	for i, e := range evs[1:] {
		// The lock's context derives from the Obtain caller's.
		if e.caller != "obtain" {
			t.Errorf("event %d (%v): caller value %v, want the Obtain caller's", i+1, e.kind, e.caller)
		}
	}
	checkPairs(t, evs, "ctxobs:one")
	if rec.plain != 0 {
		t.Errorf("Observe called %d times on a ContextObserver", rec.plain)
	}

	// A failed obtain: the caller's context.
	if _, err := c.TryObtain(ctx, "ctxobs:one-held", time.Minute); err != nil {
		t.Fatal(err)
	}
	rec2 := &ctxRecorder{}
	if _, err := c.Obtain(ctx, "ctxobs:one-held", time.Minute, relock.WithRetry(relock.NoRetry()), relock.WithObserver(rec2)); err == nil {
		t.Fatal("obtained a held lock")
	}
	if evs := rec2.all(); len(evs) != 1 || evs[0].kind != relock.EventNotObtained || evs[0].caller != "obtain" {
		t.Errorf("failed obtain events %v, want one not_obtained with the caller's context", evs)
	}
}

// Refresh finding the lock gone: the loss comes inside the call, then
// EventDone with the error.
func TestContextObserverRefreshLost(t *testing.T) {
	rec := &ctxRecorder{}
	store := memdriver.New()
	c, err := relock.New(store.Conn(), relock.WithObserver(rec))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, err := c.Obtain(context.Background(), "ctxobs:lost", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	store.Advance(time.Hour)
	if err := l.Refresh(context.Background(), 5*time.Second); err == nil {
		t.Fatal("refreshed an expired key")
	}
	_ = l.Release(context.Background()) // already ended: no call, no event
	evs := rec.all()
	want := []relock.EventKind{relock.EventObtained, relock.EventRefreshing, relock.EventLost, relock.EventDone}
	if got := kindsOf(evs); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if evs[3].err == nil {
		t.Error("EventDone of a refresh that found the lock gone has no error")
	}
	checkPairs(t, evs, "ctxobs:lost")
}

// Auto-refreshes, run by the refresher goroutine, and a loss noticed by
// the validity timer, have the lock's context; Do's function runs under
// it too; Client.Close's release is a call like the others.
func TestContextObserverBackground(t *testing.T) {
	rec := &ctxRecorder{}
	c, err := relock.New(memdriver.New().Conn(), relock.WithObserver(rec))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), ctxKey("caller"), "do")
	err = c.Do(ctx, "ctxobs:do", 600*time.Millisecond, func(fctx context.Context) error {
		if fctx.Value(ctxKey("lock")) != "ctxobs:do" {
			t.Errorf("Do's function context lacks the lock's context")
		}
		rec.waitFor(t, relock.EventRefreshed) // an auto-refresh
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	evs := rec.all()
	checkPairs(t, evs, "ctxobs:do")
	if k := kindsOf(evs); k[len(k)-2] != relock.EventReleased || k[len(k)-1] != relock.EventDone {
		t.Errorf("Do's events end with %v, want released, done", k)
	}

	// Client.Close gives back an auto-refreshed lock.
	rec2 := &ctxRecorder{}
	if _, err := c.Obtain(ctx, "ctxobs:close", time.Minute, relock.WithAutoRefresh(), relock.WithObserver(rec2)); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	evs = rec2.all()
	if got, want := kindsOf(evs), []relock.EventKind{relock.EventObtained, relock.EventReleasing, relock.EventReleased, relock.EventDone}; !slices.Equal(got, want) {
		t.Errorf("Close: events %v, want %v", got, want)
	}
	checkPairs(t, evs, "ctxobs:close")

	// A loss noticed by the timer (no auto-refresh): the lock's context.
	rec3 := &ctxRecorder{}
	c3, err := relock.New(memdriver.New().Conn(), relock.WithObserver(rec3))
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	l, err := c3.Obtain(ctx, "ctxobs:expire", 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	rec3.waitFor(t, relock.EventLost)
	evs = rec3.all()
	if got, want := kindsOf(evs), []relock.EventKind{relock.EventObtained, relock.EventLost}; !slices.Equal(got, want) {
		t.Errorf("expiry: events %v, want %v", got, want)
	}
	checkPairs(t, evs, "ctxobs:expire")
}

// ctxHandler is a slog.Handler that records the context value "caller" of
// each record, with its level and message.
type ctxHandler struct {
	mu   *sync.Mutex
	recs *[]string
}

func (h ctxHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h ctxHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.recs = append(*h.recs, r.Level.String()+" "+r.Message+" "+toString(ctx.Value(ctxKey("caller"))))
	return nil
}
func (h ctxHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h ctxHandler) WithGroup(string) slog.Handler      { return h }

func toString(v any) string {
	s, _ := v.(string)
	return s
}

// SlogObserver: levels per kind (and off), the caller's context passed to
// the handler, for the lock's events too.
func TestSlogObserverLevelsAndContext(t *testing.T) {
	var mu sync.Mutex
	var recs []string
	obs := relock.SlogObserver(slog.New(ctxHandler{&mu, &recs}),
		relock.SlogLevel(relock.EventObtained, slog.LevelInfo),
		relock.SlogLevel(relock.EventRefreshed, relock.SlogOff),
		relock.SlogLevel(relock.EventReleasing, slog.LevelDebug))
	c, err := relock.New(memdriver.New().Conn(), relock.WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.WithValue(context.Background(), ctxKey("caller"), "req-1")
	l, err := c.Obtain(ctx, "ctxobs:slog", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Refresh(context.Background(), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"INFO relock: obtained req-1",
		"DEBUG relock: releasing req-1",
		"DEBUG relock: released req-1",
	}
	if !slices.Equal(recs, want) {
		t.Errorf("records\n%s\nwant\n%s", strings.Join(recs, "\n"), strings.Join(want, "\n"))
	}

	// Observe, for callers without a context, logs with Background.
	var buf bytes.Buffer
	relock.SlogObserver(slog.New(slog.NewTextHandler(&buf, nil))).Observe(relock.Event{Kind: relock.EventLost, Key: "k", Held: 1500 * time.Millisecond})
	if !strings.Contains(buf.String(), "held=1.5s") {
		t.Errorf("lost record %q, want held=1.5s", buf.String())
	}
}

// Under concurrent refreshes, releases, expiries and Close, each lock's
// ContextObserver hears EventObtained first, every later event with the
// lock's context, exactly one end (released or lost), and each refresh or
// release it was told of begun ends with exactly one EventDone of the same
// call.
func TestContextObserverConcurrent(t *testing.T) {
	c, err := relock.New(memdriver.New().Conn())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), ctxKey("caller"), "x")
	const n = 24
	recs := make([]*ctxRecorder, n)
	var wg sync.WaitGroup
	for i := range n {
		recs[i] = &ctxRecorder{}
		l, err := c.Obtain(ctx, "ctxobs:conc:"+string(rune('a'+i)), 15*time.Millisecond, relock.WithAutoRefresh(), relock.WithObserver(recs[i]))
		if err != nil {
			t.Fatal(err)
		}
		for j := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(i+j*7) % 20 * time.Millisecond)
				switch (i + j) % 4 {
				case 0:
					_ = l.Refresh(context.Background(), 10*time.Millisecond)
				case 1:
					_ = l.Release(context.Background())
				case 2:
					_ = l.Err()
				case 3: // left to Close or the refresher
				}
			}()
		}
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		evs := r.all()
		if len(evs) == 0 || evs[0].kind != relock.EventObtained {
			t.Errorf("lock %d: events %v, want EventObtained first", i, kindsOf(evs))
			continue
		}
		ends := 0
		begun, done := map[any]int{}, map[any]int{}
		for j, e := range evs[1:] {
			if e.lock != evs[0].lock && e.lock != "ctxobs:conc:"+string(rune('a'+i)) {
				t.Errorf("lock %d event %d (%v): lock context %v", i, j+1, e.kind, e.lock)
			}
			switch e.kind {
			case relock.EventReleased, relock.EventLost:
				ends++
			case relock.EventRefreshing, relock.EventReleasing:
				begun[nil]++ // its id is on its EventDone
			case relock.EventDone:
				if e.call == nil {
					t.Errorf("lock %d: EventDone without a call context", i)
				}
				done[e.call]++
			}
		}
		if ends != 1 {
			t.Errorf("lock %d: %d end events, want 1: %v", i, ends, kindsOf(evs))
		}
		for call, k := range done {
			if k != 1 {
				t.Errorf("lock %d: call %v done %d times", i, call, k)
			}
		}
		if begun[nil] != len(done) {
			t.Errorf("lock %d: %d calls begun, %d done: %v", i, begun[nil], len(done), kindsOf(evs))
		}
	}
}

// An observer costs the core nothing on the hot path: Obtain, Refresh and
// Release allocate as much with a plain observer as without one (the
// Event is built on the stack), and without an observer the ContextObserver
// hooks are nil checks.
func TestObserverAllocations(t *testing.T) {
	if raceEnabled() {
		t.Skip("the race detector changes what escapes to the heap; .ci/run counts them in a step of its own, without -race")
	}
	measure := func(opts ...relock.Option) float64 {
		c, err := relock.New(&cannedScripts{}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx := context.Background()
		return testing.AllocsPerRun(200, func() {
			l, err := c.TryObtain(ctx, "ctxobs:allocs", 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Refresh(ctx, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
	none := measure()
	plain := measure(relock.WithObserver(relock.ObserverFunc(func(relock.Event) {})))
	if plain != none {
		t.Errorf("Obtain+Refresh+Release: %v allocations with a plain observer, %v without", plain, none)
	}
}

// Issue 19.3: an uncontended Obtain and Release with default options
// allocate at most maxPairAllocations times in relock (the driver's own
// allocations aside: cannedScripts answers from memory).
func TestPairAllocations(t *testing.T) {
	if raceEnabled() {
		t.Skip("the race detector changes what escapes to the heap; .ci/run counts them in a step of its own, without -race")
	}
	const maxPairAllocations = 3
	c, err := relock.New(&cannedScripts{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	n := testing.AllocsPerRun(500, func() {
		l, err := c.Obtain(ctx, "allocs:pair", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("Obtain+Release: %v allocations", n)
	if n > maxPairAllocations {
		t.Errorf("Obtain+Release: %v allocations, want at most %d", n, maxPairAllocations)
	}
}
