package relockotel_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/memdriver"
	relockotel "github.com/relock-go/relock/otel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// harness is a relockotel.Observer over in-memory SDK providers, and a
// record of the events it was given.
type harness struct {
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	otel   *relockotel.Observer

	mu     sync.Mutex
	events []relock.Event
}

func newHarness(t *testing.T, opts ...relockotel.Option) *harness {
	t.Helper()
	h := &harness{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	t.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = tp.Shutdown(context.Background())
	})
	obs, err := relockotel.NewObserver(append([]relockotel.Option{relockotel.WithMeterProvider(mp), relockotel.WithTracerProvider(tp)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	h.otel = obs
	return h
}

// Observe passes e to the OpenTelemetry observer, then records it: once a
// test sees an event, its metrics and spans are there.
func (h *harness) Observe(e relock.Event) {
	h.otel.Observe(e)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e)
}

func (h *harness) all() []relock.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}

func (h *harness) waitFor(t *testing.T, kind relock.EventKind) relock.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, e := range h.all() {
			if e.Kind == kind {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %v event within 10s", kind)
		}
		time.Sleep(time.Millisecond)
	}
}

func (h *harness) metric(t *testing.T, name string) (metricdata.Metrics, bool) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != relockotel.ScopeName {
			t.Errorf("scope %q, want %q", sm.Scope.Name, relockotel.ScopeName)
		}
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}

// count returns the counter name's value for exactly the attributes kvs.
func (h *harness) count(t *testing.T, name string, kvs ...attribute.KeyValue) int64 {
	t.Helper()
	m, ok := h.metric(t, name)
	if !ok {
		return 0
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok || !sum.IsMonotonic {
		t.Fatalf("%s is %T, want a monotonic Sum[int64]", name, m.Data)
	}
	want := attribute.NewSet(kvs...)
	for _, dp := range sum.DataPoints {
		if dp.Attributes.Equals(&want) {
			return dp.Value
		}
	}
	return 0
}

// total returns the counter name's value summed over all attributes.
func (h *harness) total(t *testing.T, name string) int64 {
	t.Helper()
	m, ok := h.metric(t, name)
	if !ok {
		return 0
	}
	var n int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		n += dp.Value
	}
	return n
}

// hist returns the histogram name's count and sum for exactly kvs.
func (h *harness) hist(t *testing.T, name string, kvs ...attribute.KeyValue) (uint64, float64) {
	t.Helper()
	m, ok := h.metric(t, name)
	if !ok {
		return 0, 0
	}
	if m.Unit != "s" {
		t.Errorf("%s unit %q, want s", name, m.Unit)
	}
	hd, ok := m.Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s is %T, want Histogram[float64]", name, m.Data)
	}
	want := attribute.NewSet(kvs...)
	for _, dp := range hd.DataPoints {
		if dp.Attributes.Equals(&want) {
			return dp.Count, dp.Sum
		}
	}
	return 0, 0
}

func (h *harness) ended(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range h.spans.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func attr(s sdktrace.ReadOnlySpan, k attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// exceptionMessage returns the exception.message of a span event that
// RecordError made.
func exceptionMessage(e sdktrace.Event) string {
	for _, kv := range e.Attributes {
		if kv.Key == "exception.message" {
			return kv.Value.AsString()
		}
	}
	return ""
}

func miniredisConn(t *testing.T, m *miniredis.Miniredis) *goredis.Conn {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return goredis.New(rdb)
}

var (
	obtained    = attribute.String("relock.outcome", "obtained")
	notObtained = attribute.String("relock.outcome", "not_obtained")
)

// A key deleted behind an auto-refreshed lock: relock.lost{reason=not_held},
// the hold histogram with end=lost, and an errored relock.Hold span from
// ObtainedAt to the loss; on both paths.
func TestLostLock(t *testing.T) {
	type backend struct {
		conn   func(t *testing.T) driver.Conn
		remove func(key string)
	}
	var (
		store = memdriver.New()
		mini  *miniredis.Miniredis
	)
	backends := map[string]backend{
		"watch-path-memdriver-expired": {
			conn:   func(*testing.T) driver.Conn { return store.Conn() },
			remove: func(string) { store.Advance(time.Hour) },
		},
		"script-path-miniredis-deleted": {
			conn: func(t *testing.T) driver.Conn {
				mini = miniredis.RunT(t)
				return miniredisConn(t, mini)
			},
			remove: func(key string) { mini.Del(key) },
		},
	}
	for name, b := range backends {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			c, err := relock.New(b.conn(t), relock.WithObserver(h))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			l, err := c.Obtain(context.Background(), "otel:lost", 1500*time.Millisecond, relock.WithAutoRefresh())
			if err != nil {
				t.Fatal(err)
			}
			b.remove("otel:lost")
			lost := h.waitFor(t, relock.EventLost)
			_ = c.Close()

			if n := h.count(t, "relock.obtained", attribute.Bool("relock.handed_over", false)); n != 1 {
				t.Errorf("relock.obtained{handed_over=false} = %d, want 1", n)
			}
			if n := h.count(t, "relock.lost", attribute.String("relock.reason", "not_held")); n != 1 {
				t.Errorf("relock.lost{reason=not_held} = %d, want 1", n)
			}
			if n := h.total(t, "relock.lost"); n != 1 {
				t.Errorf("relock.lost = %d in all, want 1", n)
			}
			if n := h.total(t, "relock.released"); n != 0 {
				t.Errorf("relock.released = %d for a lost lock", n)
			}
			if n, sum := h.hist(t, "relock.hold.duration", attribute.String("relock.end", "lost")); n != 1 || sum != lost.Held.Seconds() {
				t.Errorf("relock.hold.duration{end=lost}: count %d sum %v, want 1 and %v", n, sum, lost.Held.Seconds())
			}
			if n, _ := h.hist(t, "relock.obtain.duration", obtained); n != 1 {
				t.Errorf("relock.obtain.duration{outcome=obtained} count %d, want 1", n)
			}

			holds := h.ended("relock.Hold")
			if len(holds) != 1 {
				t.Fatalf("%d relock.Hold spans, want 1", len(holds))
			}
			s := holds[0]
			if s.Status().Code != codes.Error || !s.EndTime().Equal(lost.Time) || !s.StartTime().Equal(l.ObtainedAt()) {
				t.Errorf("relock.Hold: status %v, [%v, %v]; want Error, [%v (ObtainedAt), %v (the loss)]", s.Status(), s.StartTime(), s.EndTime(), l.ObtainedAt(), lost.Time)
			}
			if v, _ := attr(s, relockotel.EndAttr); v.AsString() != "lost" {
				t.Errorf("relock.Hold relock.end = %q, want lost", v.AsString())
			}
			if v, _ := attr(s, relockotel.ReasonAttr); v.AsString() != "not_held" {
				t.Errorf("relock.Hold relock.reason = %q, want not_held", v.AsString())
			}
			if evs := s.Events(); len(evs) != 1 || evs[0].Name != "exception" {
				t.Errorf("relock.Hold events %v, want the recorded error", evs)
			}
			if n := len(h.ended("relock.Obtain")); n != 1 {
				t.Errorf("%d relock.Obtain spans, want 1", n)
			}
			if n := len(h.ended("relock.Release")); n != 0 {
				t.Errorf("%d relock.Release spans for a lost lock", n)
			}
			if _, ok := attr(s, relockotel.KeyAttr); ok {
				t.Error("relock.key recorded without WithKeyAttribute(true)")
			}
		})
	}
}

// countingConn is a goredis adapter that counts the scripts that ran and
// the subscriptions it opened, so a test knows when a waiter has queued.
type countingConn struct {
	*goredis.Conn
	scripts atomic.Int32
	subs    atomic.Int32
}

func (c *countingConn) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	r, err := c.Conn.EvalSha(ctx, sha1, keys, args...)
	if err == nil {
		c.scripts.Add(1)
	}
	return r, err
}

func (c *countingConn) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	r, err := c.Conn.Eval(ctx, script, keys, args...)
	if err == nil {
		c.scripts.Add(1)
	}
	return r, err
}

func (c *countingConn) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	c.subs.Add(1)
	return c.Conn.Subscribe(ctx, onMessage)
}

// A release hands the lock to a queued waiter: relock.obtained with
// handed_over=true, relock.contended, and a relock.Obtain span that spans
// the waiter's whole wait.
func TestHandOver(t *testing.T) {
	m := miniredis.RunT(t)
	h := newHarness(t, relockotel.WithKeyAttribute(true))
	ctx := context.Background()
	holder, err := relock.New(miniredisConn(t, m), relock.WithObserver(h))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	held, err := holder.Obtain(ctx, "otel:handover", 10*time.Second, relock.WithFencing())
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingConn{Conn: miniredisConn(t, m)}
	waiter, err := relock.New(counted, relock.WithObserver(h), relock.WithRetry(relock.FixedRetry(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()
	type result struct {
		l   *relock.Lock
		err error
	}
	got := make(chan result, 1)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	go func() {
		l, err := waiter.Obtain(wctx, "otel:handover", 10*time.Second, relock.WithFencing())
		got <- result{l, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for counted.scripts.Load() < 2 || counted.subs.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the waiter did not subscribe and queue within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := r.l.Release(ctx); err != nil {
		t.Fatal(err)
	}

	key := attribute.String("relock.key", "otel:handover")
	if n := h.count(t, "relock.obtained", key, attribute.Bool("relock.handed_over", true)); n != 1 {
		t.Errorf("relock.obtained{handed_over=true} = %d, want 1", n)
	}
	if n := h.count(t, "relock.obtained", key, attribute.Bool("relock.handed_over", false)); n != 1 {
		t.Errorf("relock.obtained{handed_over=false} = %d, want 1 (the holder)", n)
	}
	if n := h.count(t, "relock.contended", key); n != 1 {
		t.Errorf("relock.contended = %d, want 1 (the waiter)", n)
	}
	if n := h.count(t, "relock.released", key); n != 2 {
		t.Errorf("relock.released = %d, want 2", n)
	}
	if n, _ := h.hist(t, "relock.obtain.duration", key, obtained); n != 2 {
		t.Errorf("relock.obtain.duration{outcome=obtained} count %d, want 2", n)
	}
	if n, _ := h.hist(t, "relock.hold.duration", key, attribute.String("relock.end", "released")); n != 2 {
		t.Errorf("relock.hold.duration{end=released} count %d, want 2", n)
	}

	var waited relock.Event
	for _, e := range h.all() {
		if e.Kind == relock.EventObtained && e.HandedOver {
			waited = e
		}
	}
	var handed []sdktrace.ReadOnlySpan
	for _, s := range h.ended("relock.Obtain") {
		if v, _ := attr(s, relockotel.HandedOverAttr); v.AsBool() {
			handed = append(handed, s)
		}
	}
	if len(handed) != 1 {
		t.Fatalf("%d relock.Obtain spans with handed_over, want 1", len(handed))
	}
	s := handed[0]
	if s.Status().Code == codes.Error {
		t.Errorf("the hand-over's span has status %v", s.Status())
	}
	if !s.EndTime().Equal(waited.Time) || s.EndTime().Sub(s.StartTime()) != waited.Wait || waited.Wait <= 0 {
		t.Errorf("relock.Obtain span [%v, %v], want the wait %v ending %v", s.StartTime(), s.EndTime(), waited.Wait, waited.Time)
	}
	if v, _ := attr(s, relockotel.TriesAttr); v.AsInt64() != 2 {
		t.Errorf("relock.tries = %d, want 2", v.AsInt64())
	}
	if v, _ := attr(s, relockotel.FenceAttr); v.AsInt64() != r.l.Fence() || r.l.Fence() <= held.Fence() {
		t.Errorf("relock.fence = %d, want the waiter's %d (above the holder's %d)", v.AsInt64(), r.l.Fence(), held.Fence())
	}
	if v, _ := attr(s, relockotel.KeyAttr); v.AsString() != "otel:handover" {
		t.Errorf("relock.key = %q with WithKeyAttribute(true)", v.AsString())
	}
	if n := len(h.ended("relock.Release")); n != 2 {
		t.Errorf("%d relock.Release spans, want 2", n)
	}
}

// failingRefreshConn obtains normally and, once fail is set, fails every
// transaction (the WATCH path's refresh) at once.
type failingRefreshConn struct {
	*memdriver.Conn
	fail atomic.Bool
}

var errRefused = errors.New("relockotel_test: connection refused")

func (c *failingRefreshConn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	if c.fail.Load() {
		return errRefused
	}
	return c.Conn.Watch(ctx, keys, fn)
}

// Refreshes that fail: relock.refresh_failed and errored relock.Refresh
// spans, then relock.lost{reason=expired} when the validity runs out.
func TestRefreshFailure(t *testing.T) {
	const ttl = 600 * time.Millisecond
	conn := &failingRefreshConn{Conn: memdriver.New().Conn()}
	h := newHarness(t)
	c, err := relock.New(conn, relock.WithObserver(h))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Obtain(context.Background(), "otel:refresh", ttl, relock.WithAutoRefresh()); err != nil {
		t.Fatal(err)
	}
	h.waitFor(t, relock.EventRefreshed)
	conn.fail.Store(true)
	lost := h.waitFor(t, relock.EventLost)
	_ = c.Close() // no refresh after this: the counts are final

	var refreshed, failed int64
	for _, e := range h.all() {
		switch e.Kind {
		case relock.EventRefreshed:
			refreshed++
		case relock.EventRefreshFailed:
			failed++
		}
	}
	if refreshed == 0 || failed == 0 {
		t.Fatalf("%d refreshed and %d failed events, want some of each", refreshed, failed)
	}
	if n := h.total(t, "relock.refreshed"); n != refreshed {
		t.Errorf("relock.refreshed = %d, want %d", n, refreshed)
	}
	if n := h.count(t, "relock.refresh_failed"); n != failed {
		t.Errorf("relock.refresh_failed = %d, want %d", n, failed)
	}
	if n := h.count(t, "relock.lost", attribute.String("relock.reason", "expired")); n != 1 {
		t.Errorf("relock.lost{reason=expired} = %d, want 1", n)
	}
	if n, sum := h.hist(t, "relock.hold.duration", attribute.String("relock.end", "lost")); n != 1 || sum < (ttl-ttl/100-2*time.Millisecond).Seconds() {
		t.Errorf("relock.hold.duration{end=lost}: count %d sum %vs, want 1 and at least one validity period", n, sum)
	}

	var okSpans, errSpans int64
	for _, s := range h.ended("relock.Refresh") {
		if !s.StartTime().Equal(s.EndTime()) {
			t.Errorf("relock.Refresh span [%v, %v], want an instant", s.StartTime(), s.EndTime())
		}
		if v, _ := attr(s, relockotel.TTLAttr); v.AsInt64() != ttl.Milliseconds() {
			t.Errorf("relock.ttl_ms = %d, want %d", v.AsInt64(), ttl.Milliseconds())
		}
		if s.Status().Code == codes.Error {
			errSpans++
			if evs := s.Events(); len(evs) != 1 || !strings.Contains(exceptionMessage(evs[0]), errRefused.Error()) {
				t.Errorf("failed relock.Refresh span events %v, want the driver's error recorded", evs)
			}
		} else {
			okSpans++
		}
	}
	if okSpans != refreshed || errSpans != failed {
		t.Errorf("relock.Refresh spans: %d ok, %d errored; want %d and %d", okSpans, errSpans, refreshed, failed)
	}
	holds := h.ended("relock.Hold")
	if len(holds) != 1 || holds[0].Status().Code != codes.Error || !holds[0].EndTime().Equal(lost.Time) {
		t.Fatalf("relock.Hold spans %v, want one errored, ending at the loss %v", holds, lost.Time)
	}
	if v, _ := attr(holds[0], relockotel.ReasonAttr); v.AsString() != "expired" {
		t.Errorf("relock.Hold relock.reason = %q, want expired", v.AsString())
	}
}

// brokenConn fails every SET NX, the first try of an obtain on the WATCH
// path: Redis is broken.
type brokenConn struct{ *memdriver.Conn }

func (brokenConn) SetNX(context.Context, string, string, time.Duration) (bool, error) {
	return false, errors.New("relockotel_test: broken")
}

// refusingConn refuses every SET NX for now, as a Redis loading its data
// set does: Redis is unavailable.
type refusingConn struct{ *memdriver.Conn }

func (refusingConn) SetNX(context.Context, string, string, time.Duration) (bool, error) {
	return false, driver.ServerError("LOADING Redis is loading the dataset in memory")
}

// Each way Obtain can fail is counted under its reason, and the span is
// errored.
func TestNotObtained(t *testing.T) {
	h := newHarness(t)
	store := memdriver.New()
	c, err := relock.New(store.Conn(), relock.WithObserver(h))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	held, err := c.Obtain(ctx, "otel:taken", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release(ctx)
	if _, err := c.TryObtain(ctx, "otel:taken", time.Second); !errors.Is(err, relock.ErrNotObtained) {
		t.Fatalf("TryObtain = %v", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if _, err := c.Obtain(cctx, "otel:taken", time.Second); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Obtain with a deadline = %v", err)
	}
	broken, err := relock.New(brokenConn{store.Conn()}, relock.WithObserver(h))
	if err != nil {
		t.Fatal(err)
	}
	defer broken.Close()
	if _, err := broken.Obtain(ctx, "otel:broken", time.Second); err == nil || errors.Is(err, relock.ErrNotObtained) {
		t.Fatalf("Obtain over a broken driver = %v, want a plain error", err)
	}

	refusing, err := relock.New(refusingConn{store.Conn()}, relock.WithObserver(h))
	if err != nil {
		t.Fatal(err)
	}
	defer refusing.Close()
	// Several tries, all refused: unavailable, and not contended.
	if _, err := refusing.Obtain(ctx, "otel:refused", time.Second, relock.WithMaxWait(50*time.Millisecond)); !errors.Is(err, relock.ErrUnavailable) {
		t.Fatalf("Obtain over a refusing driver = %v, want ErrUnavailable", err)
	}

	for _, reason := range []string{"taken", "context", "error", "unavailable"} {
		if n := h.count(t, "relock.not_obtained", attribute.String("relock.reason", reason)); n != 1 {
			t.Errorf("relock.not_obtained{reason=%s} = %d, want 1", reason, n)
		}
	}
	if n, _ := h.hist(t, "relock.obtain.duration", notObtained); n != 4 {
		t.Errorf("relock.obtain.duration{outcome=not_obtained} count %d, want 4", n)
	}
	// The TryObtain (taken) and the Obtain that waited, if it made more
	// than one try, found the lock taken; the broken and refusing ones did
	// not.
	want := int64(1)
	for _, e := range h.all() {
		if e.Kind == relock.EventNotObtained && errors.Is(e.Err, context.DeadlineExceeded) && !errors.Is(e.Err, relock.ErrUnavailable) && e.Tries > 1 {
			want++
		}
	}
	if n := h.count(t, "relock.contended"); n != want {
		t.Errorf("relock.contended = %d, want %d", n, want)
	}
	errored := 0
	for _, s := range h.ended("relock.Obtain") {
		if v, _ := attr(s, relockotel.OutcomeAttr); v.AsString() == "not_obtained" {
			if s.Status().Code != codes.Error {
				t.Errorf("a failed relock.Obtain span has status %v", s.Status())
			}
			errored++
		}
	}
	if errored != 4 {
		t.Errorf("%d failed relock.Obtain spans, want 4", errored)
	}
}

func TestReasons(t *testing.T) {
	notObtained := map[error]string{
		relock.ErrNotObtained:                                        "taken",
		errors.Join(relock.ErrNotObtained, context.Canceled):         "context",
		errors.Join(relock.ErrNotObtained, context.DeadlineExceeded): "context",
		relock.ErrClosed:          "error",
		errors.New("redis: down"): "error",
		errors.Join(relock.ErrUnavailable, context.DeadlineExceeded): "unavailable",
		relock.ErrUnavailable:  "unavailable",
		relock.ErrNoPermission: "no_permission",
	}
	for err, want := range notObtained {
		if got := relockotel.NotObtainedReason(err); got != want {
			t.Errorf("NotObtainedReason(%v) = %q, want %q", err, got, want)
		}
	}
	lost := map[error]string{
		errors.Join(relock.ErrLost, relock.ErrNotHeld): "not_held",
		relock.ErrLost:      "expired",
		relock.ErrClosed:    "other",
		errors.New("other"): "other",
	}
	for err, want := range lost {
		if got := relockotel.LostReason(err); got != want {
			t.Errorf("LostReason(%v) = %q, want %q", err, got, want)
		}
	}
}

// Events of kinds the observer does not know record nothing; a nil option
// is ignored.
func TestUnknownKindAndNilOption(t *testing.T) {
	h := newHarness(t, nil)
	h.otel.Observe(relock.Event{Kind: 0, Key: "k", Time: time.Now()})
	h.otel.Observe(relock.Event{Kind: 250, Key: "k", Time: time.Now()})
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			t.Errorf("unknown kinds recorded %s", m.Name)
		}
	}
	if n := len(h.spans.Ended()); n != 0 {
		t.Errorf("unknown kinds made %d spans", n)
	}
}

// BenchmarkObserve measures what one event costs with the SDK behind the
// observer: an obtain (metrics and a span) and a release (metrics and two
// spans).
func BenchmarkObserve(b *testing.B) {
	for _, withKey := range []bool{false, true} {
		b.Run(fmt.Sprintf("key=%v", withKey), func(b *testing.B) {
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()), sdktrace.WithSampler(sdktrace.NeverSample()))
			defer mp.Shutdown(context.Background())
			defer tp.Shutdown(context.Background())
			obs, err := relockotel.NewObserver(relockotel.WithMeterProvider(mp), relockotel.WithTracerProvider(tp), relockotel.WithKeyAttribute(withKey))
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			ob := relock.Event{Kind: relock.EventObtained, Key: "k", Time: now, Wait: time.Millisecond, Tries: 1, TTL: time.Second}
			rel := relock.Event{Kind: relock.EventReleased, Key: "k", Time: now, Held: time.Millisecond, TTL: time.Second}
			b.ReportAllocs()
			for b.Loop() {
				obs.Observe(ob)
				obs.Observe(rel)
			}
		})
	}
}
