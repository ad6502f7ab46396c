package relockotel_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	"go.opentelemetry.io/otel/trace"
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
	tp     *sdktrace.TracerProvider
	otel   *relockotel.Observer

	mu     sync.Mutex
	events []relock.Event
}

type newFunc func(...relockotel.Option) (*relockotel.Observer, error)

func newHarness(t *testing.T, opts ...relockotel.Option) *harness {
	return newHarnessWith(t, relockotel.NewObserver, opts...)
}

func newHarnessWith(t *testing.T, newObs newFunc, opts ...relockotel.Option) *harness {
	t.Helper()
	h := &harness{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	h.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	t.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = h.tp.Shutdown(context.Background())
	})
	obs, err := newObs(append([]relockotel.Option{relockotel.WithMeterProvider(mp), relockotel.WithTracerProvider(h.tp)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	h.otel = obs
	return h
}

func (h *harness) Observe(e relock.Event) { h.ObserveContext(context.Background(), e) }

// ObserveContext passes e to the OpenTelemetry observer, then records it:
// once a test sees an event, its metrics and spans are there.
func (h *harness) ObserveContext(ctx context.Context, e relock.Event) context.Context {
	ctx = h.otel.ObserveContext(ctx, e)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e)
	return ctx
}

func (h *harness) all() []relock.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}

// waitFor waits for the n-th event of kind, for a generous while.
func (h *harness) waitFor(t *testing.T, kind relock.EventKind, n int) relock.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		seen := 0
		for _, e := range h.all() {
			if e.Kind == kind {
				if seen++; seen == n {
					return e
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %v event #%d within 10s", kind, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func (h *harness) metrics(t *testing.T) []metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var out []metricdata.Metrics
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != relockotel.ScopeName {
			t.Errorf("scope %q, want %q", sm.Scope.Name, relockotel.ScopeName)
		}
		out = append(out, sm.Metrics...)
	}
	return out
}

// points returns histogram name's data points, checking its unit.
func (h *harness) points(t *testing.T, name string) []metricdata.HistogramDataPoint[float64] {
	t.Helper()
	for _, m := range h.metrics(t) {
		if m.Name != name {
			continue
		}
		if m.Unit != "s" {
			t.Errorf("%s unit %q, want s", name, m.Unit)
		}
		hd, ok := m.Data.(metricdata.Histogram[float64])
		if !ok {
			t.Fatalf("%s is %T, want Histogram[float64]", name, m.Data)
		}
		return hd.DataPoints
	}
	return nil
}

// hist returns histogram name's count and sum for exactly kvs plus
// db.system.name.
func (h *harness) hist(t *testing.T, name string, kvs ...attribute.KeyValue) (uint64, float64) {
	t.Helper()
	want := attribute.NewSet(append(kvs, relockotel.DBSystemNameAttr.String("redis"))...)
	for _, dp := range h.points(t, name) {
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

func (h *harness) one(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	s := h.ended(name)
	if len(s) != 1 {
		t.Fatalf("%d %s spans, want 1", len(s), name)
	}
	return s[0]
}

func attr(s sdktrace.ReadOnlySpan, k attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// slowConn is a memdriver connection whose transactions (the refresh and
// release of the WATCH path) take at least delay when slow is set.
type slowConn struct {
	*memdriver.Conn
	slow atomic.Bool
	fail atomic.Bool
}

const delay = 20 * time.Millisecond

var errRefused = errors.New("relockotel_test: connection refused")

func (c *slowConn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	if c.slow.Load() {
		time.Sleep(delay)
	}
	if c.fail.Load() {
		return errRefused
	}
	return c.Conn.Watch(ctx, keys, fn)
}

// The spans of a lock join the caller's trace: relock.Obtain and
// relock.Hold are children of the caller's span, relock.Hold is linked to
// relock.Obtain, and the refreshes (auto or not) and the release are
// children of relock.Hold; Do's function runs under relock.Hold.
// On both paths: WATCH (memdriver) and scripts (miniredis).
func TestSpanTree(t *testing.T) {
	for name, conn := range map[string]func(t *testing.T) driver.Conn{
		"watch":  func(*testing.T) driver.Conn { return memdriver.New().Conn() },
		"script": func(t *testing.T) driver.Conn { return miniredisConn(t, miniredis.RunT(t)) },
	} {
		t.Run(name, func(t *testing.T) { testSpanTree(t, conn(t)) })
	}
}

func testSpanTree(t *testing.T, conn driver.Conn) {
	h := newHarness(t)
	c, err := relock.New(conn, relock.WithObserver(h))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, req := h.tp.Tracer("test").Start(context.Background(), "request")
	var fnSpan trace.SpanContext
	err = c.Do(ctx, "otel:tree", 600*time.Millisecond, func(fctx context.Context) error {
		fnSpan = trace.SpanContextFromContext(fctx)
		h.waitFor(t, relock.EventRefreshed, 2) // two auto-refreshes
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	req.End()

	reqSC := req.SpanContext()
	obtain, hold := h.one(t, "relock.Obtain"), h.one(t, "relock.Hold")
	for _, s := range []sdktrace.ReadOnlySpan{obtain, hold} {
		if s.Parent().SpanID() != reqSC.SpanID() || s.SpanContext().TraceID() != reqSC.TraceID() {
			t.Errorf("%s parent %v, want the caller's span %v", s.Name(), s.Parent().SpanID(), reqSC.SpanID())
		}
	}
	if l := hold.Links(); len(l) != 1 || !l[0].SpanContext.Equal(obtain.SpanContext()) {
		t.Errorf("relock.Hold links %v, want relock.Obtain %v", l, obtain.SpanContext())
	}
	if !fnSpan.Equal(hold.SpanContext()) {
		t.Errorf("Do's function runs under span %v, want relock.Hold %v", fnSpan.SpanID(), hold.SpanContext().SpanID())
	}
	refreshes := h.ended("relock.Refresh")
	if len(refreshes) < 2 {
		t.Errorf("%d relock.Refresh spans, want at least 2", len(refreshes))
	}
	for _, s := range append(refreshes, h.one(t, "relock.Release")) {
		if s.Parent().SpanID() != hold.SpanContext().SpanID() || s.SpanContext().TraceID() != reqSC.TraceID() {
			t.Errorf("%s parent %v, want relock.Hold %v", s.Name(), s.Parent().SpanID(), hold.SpanContext().SpanID())
		}
		if s.Status().Code == codes.Error {
			t.Errorf("%s errored: %v", s.Name(), s.Status())
		}
	}
	if hold.Status().Code == codes.Error {
		t.Errorf("relock.Hold of a released lock errored: %v", hold.Status())
	}
	if got := len(h.spans.Ended()); got != 4+len(refreshes) {
		t.Errorf("%d spans, want request, Obtain, Hold, Release and the refreshes", got)
	}
}

// relock.Refresh and relock.Release measure the call to Redis, and so
// do their histograms; attribute names follow the conventions.
func TestCallSpansAndAttributes(t *testing.T) {
	h := newHarness(t, relockotel.WithServer("redis.example:6380"))
	conn := &slowConn{Conn: memdriver.New().Conn()}
	c, err := relock.New(conn, relock.WithObserver(h))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	l, err := c.Obtain(ctx, "otel:calls", time.Minute, relock.WithFencing())
	if err != nil {
		t.Fatal(err)
	}
	conn.slow.Store(true)
	if err := l.Refresh(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"relock.Refresh", "relock.Release"} {
		s := h.one(t, name)
		if d := s.EndTime().Sub(s.StartTime()); d < delay {
			t.Errorf("%s lasted %v, want at least the call's %v", name, d, delay)
		}
	}
	for _, name := range []string{"relock.refresh.duration", "relock.release.duration"} {
		n, sum := h.hist(t, name, relockotel.ServerAddressAttr.String("redis.example"), relockotel.ServerPortAttr.Int(6380))
		if n != 1 || sum < delay.Seconds() {
			t.Errorf("%s: %d recorded, sum %vs; want 1 of at least %v", name, n, sum, delay)
		}
	}

	// Attribute names and values.
	common := map[attribute.Key]attribute.Value{
		"db.system.name": attribute.StringValue("redis"),
		"server.address": attribute.StringValue("redis.example"),
		"server.port":    attribute.IntValue(6380),
		"relock.key":     attribute.StringValue("otel:calls"),
		"relock.fence":   attribute.Int64Value(l.Fence()),
	}
	want := map[string]map[attribute.Key]attribute.Value{
		"relock.Obtain": {"relock.tries": attribute.IntValue(1), "relock.handed_over": attribute.BoolValue(false),
			"relock.contended": attribute.BoolValue(false), "relock.ttl": attribute.Float64Value(60)},
		"relock.Hold":    {"relock.ttl": attribute.Float64Value(60)},
		"relock.Refresh": {"relock.ttl": attribute.Float64Value(120)},
		"relock.Release": {},
	}
	for name, kvs := range want {
		s := h.one(t, name)
		if s.SpanKind() != trace.SpanKindInternal {
			t.Errorf("%s kind %v, want internal", name, s.SpanKind())
		}
		for k, v := range common {
			kvs[k] = v
		}
		got := map[attribute.Key]attribute.Value{}
		for _, kv := range s.Attributes() {
			got[kv.Key] = kv.Value
		}
		if len(got) != len(kvs) {
			t.Errorf("%s attributes %v, want %v", name, s.Attributes(), kvs)
		}
		for k, v := range kvs {
			if got[k] != v {
				t.Errorf("%s %s = %v, want %v", name, k, got[k].Emit(), v.Emit())
			}
		}
	}

	// The metrics: four histograms, nothing else.
	var names []string
	for _, m := range h.metrics(t) {
		names = append(names, m.Name)
	}
	slices.Sort(names)
	if want := []string{"relock.hold.duration", "relock.obtain.duration", "relock.refresh.duration", "relock.release.duration"}; !slices.Equal(names, want) {
		t.Errorf("metrics %v, want %v", names, want)
	}
	srv := []attribute.KeyValue{relockotel.ServerAddressAttr.String("redis.example"), relockotel.ServerPortAttr.Int(6380)}
	if n, _ := h.hist(t, "relock.obtain.duration", append(srv, relockotel.ContendedAttr.Bool(false))...); n != 1 {
		t.Errorf("relock.obtain.duration{contended=false}: %d, want 1", n)
	}
	if n, _ := h.hist(t, "relock.hold.duration", srv...); n != 1 {
		t.Errorf("relock.hold.duration{}: %d, want 1", n)
	}
}

// A refresh that finds the key gone: relock.Refresh and relock.Hold end
// errored with error.type not_held, and so are the histograms.
func TestLostNotHeld(t *testing.T) {
	h := newHarness(t)
	store := memdriver.New()
	c, err := relock.New(store.Conn(), relock.WithObserver(h))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, req := h.tp.Tracer("test").Start(context.Background(), "request")
	l, err := c.Obtain(ctx, "otel:lost", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	store.Advance(time.Hour)
	if err := l.Refresh(ctx, 5*time.Second); !errors.Is(err, relock.ErrNotHeld) {
		t.Fatalf("Refresh of an expired key = %v", err)
	}
	_ = l.Release(ctx)
	req.End()
	hold, refresh := h.one(t, "relock.Hold"), h.one(t, "relock.Refresh")
	for _, s := range []sdktrace.ReadOnlySpan{hold, refresh} {
		if v, _ := attr(s, relockotel.ErrorTypeAttr); v.AsString() != "not_held" || s.Status().Code != codes.Error {
			t.Errorf("%s: error.type %q, status %v; want not_held, Error", s.Name(), v.AsString(), s.Status())
		}
	}
	if refresh.Parent().SpanID() != hold.SpanContext().SpanID() {
		t.Error("relock.Refresh not a child of relock.Hold")
	}
	if n := len(h.ended("relock.Release")); n != 0 {
		t.Errorf("%d relock.Release spans for a release that sent nothing", n)
	}
	et := relockotel.ErrorTypeAttr.String("not_held")
	if n, _ := h.hist(t, "relock.hold.duration", et); n != 1 {
		t.Errorf("relock.hold.duration{error.type=not_held}: %d, want 1", n)
	}
	if n, _ := h.hist(t, "relock.refresh.duration", et); n != 1 {
		t.Errorf("relock.refresh.duration{error.type=not_held}: %d, want 1", n)
	}
}

// Auto-refreshes that fail, then the loss noticed by the validity timer:
// errored relock.Refresh spans under relock.Hold, which ends with
// error.type expired, in the caller's trace although the timer noticed it.
func TestLostExpired(t *testing.T) {
	const ttl = 300 * time.Millisecond
	conn := &slowConn{Conn: memdriver.New().Conn()}
	h := newHarness(t)
	c, err := relock.New(conn, relock.WithObserver(h))
	if err != nil {
		t.Fatal(err)
	}
	ctx, req := h.tp.Tracer("test").Start(context.Background(), "request")
	if _, err := c.Obtain(ctx, "otel:expire", ttl, relock.WithAutoRefresh()); err != nil {
		t.Fatal(err)
	}
	req.End()
	conn.fail.Store(true)
	h.waitFor(t, relock.EventLost, 1)
	_ = c.Close()
	hold := h.one(t, "relock.Hold")
	if v, _ := attr(hold, relockotel.ErrorTypeAttr); v.AsString() != "expired" || hold.Status().Code != codes.Error {
		t.Errorf("relock.Hold error.type %q status %v, want expired, Error", v.AsString(), hold.Status())
	}
	if hold.Parent().SpanID() != req.SpanContext().SpanID() {
		t.Error("relock.Hold not a child of the caller's span")
	}
	failed := 0
	for _, s := range h.ended("relock.Refresh") {
		if s.Parent().SpanID() != hold.SpanContext().SpanID() {
			t.Errorf("auto-refresh span parent %v, want relock.Hold", s.Parent().SpanID())
		}
		if s.Status().Code == codes.Error {
			failed++
			if v, ok := attr(s, relockotel.ErrorTypeAttr); !ok || v.AsString() == "" {
				t.Error("failed relock.Refresh without error.type")
			}
		}
	}
	if failed == 0 {
		t.Error("no failed relock.Refresh span")
	}
	if n, _ := h.hist(t, "relock.hold.duration", relockotel.ErrorTypeAttr.String("expired")); n != 1 {
		t.Errorf("relock.hold.duration{error.type=expired}: %d, want 1", n)
	}
}

// Client.Close gives back an auto-refreshed lock: relock.Release under
// relock.Hold, which ends unerrored.
func TestClose(t *testing.T) {
	h := newHarness(t)
	c, err := relock.New(memdriver.New().Conn(), relock.WithObserver(h))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Obtain(context.Background(), "otel:close", time.Minute, relock.WithAutoRefresh()); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	hold, rel := h.one(t, "relock.Hold"), h.one(t, "relock.Release")
	if rel.Parent().SpanID() != hold.SpanContext().SpanID() || hold.Status().Code == codes.Error || rel.Status().Code == codes.Error {
		t.Errorf("Close: relock.Release parent %v status %v, relock.Hold status %v", rel.Parent().SpanID(), rel.Status(), hold.Status())
	}
}

// refusingConn refuses every SET NX for now, as a Redis loading its data
// set does: Redis is unavailable.
type refusingConn struct{ *memdriver.Conn }

func (refusingConn) SetNX(context.Context, string, string, time.Duration) (bool, error) {
	return false, driver.ServerError("LOADING Redis is loading the dataset in memory")
}

// Each way Obtain can fail has its error.type, on the histogram and the
// errored span; a contended call says so.
func TestNotObtained(t *testing.T) {
	h := newHarness(t)
	store := memdriver.New()
	c, err := relock.New(store.Conn(), relock.WithObserver(h))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Obtain(ctx, "otel:taken", time.Minute); err != nil {
		t.Fatal(err)
	}
	_, _ = c.TryObtain(ctx, "otel:taken", time.Minute)
	_, _ = c.Obtain(ctx, "otel:taken", time.Minute, relock.WithMaxWait(30*time.Millisecond))
	dctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	_, _ = c.Obtain(dctx, "otel:taken", time.Minute)
	cancel()
	r, err := relock.New(refusingConn{store.Conn()}, relock.WithObserver(h))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, _ = r.TryObtain(ctx, "otel:refused", time.Minute)

	yes, no := relockotel.ContendedAttr.Bool(true), relockotel.ContendedAttr.Bool(false)
	for _, w := range []struct {
		errType string
		c       attribute.KeyValue
		n       uint64
	}{{"not_obtained", yes, 2}, {"deadline_exceeded", yes, 1}, {"unavailable", no, 1}} {
		if n, _ := h.hist(t, "relock.obtain.duration", relockotel.ErrorTypeAttr.String(w.errType), w.c); n != w.n {
			t.Errorf("relock.obtain.duration{error.type=%s, contended=%v}: %d, want %d", w.errType, w.c.Value.AsBool(), n, w.n)
		}
	}
	errored := 0
	for _, s := range h.ended("relock.Obtain") {
		if s.Status().Code == codes.Error {
			errored++
			if _, ok := attr(s, relockotel.ErrorTypeAttr); !ok {
				t.Errorf("errored relock.Obtain without error.type: %v", s.Attributes())
			}
		}
	}
	if errored != 4 || len(h.ended("relock.Hold")) != 0 {
		t.Errorf("%d errored relock.Obtain spans, want 4; %d relock.Hold, want none ended", errored, len(h.ended("relock.Hold")))
	}
}

// NewTracingObserver records spans only, NewMetricsObserver metrics only;
// the lock's life is the same under both.
func TestTracingOnlyMetricsOnly(t *testing.T) {
	for _, tc := range []struct {
		name             string
		new              newFunc
		spans, histogram bool
	}{
		{"tracing", relockotel.NewTracingObserver, true, false},
		{"metrics", relockotel.NewMetricsObserver, false, true},
		{"both", relockotel.NewObserver, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarnessWith(t, tc.new)
			c, err := relock.New(memdriver.New().Conn(), relock.WithObserver(h))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, req := h.tp.Tracer("test").Start(context.Background(), "request")
			var fnSpan trace.SpanContext
			if err := c.Do(ctx, "otel:only", time.Minute, func(fctx context.Context) error {
				fnSpan = trace.SpanContextFromContext(fctx)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			req.End()
			if got := len(h.spans.Ended()) > 1; got != tc.spans {
				t.Errorf("%d spans (request included)", len(h.spans.Ended()))
			}
			if got := len(h.metrics(t)) > 0; got != tc.histogram {
				t.Errorf("%d metrics", len(h.metrics(t)))
			}
			if !tc.spans && !fnSpan.Equal(req.SpanContext()) {
				t.Error("without tracing, Do's function does not run under the caller's span")
			}
			if tc.histogram {
				for _, name := range []string{"relock.obtain.duration", "relock.hold.duration", "relock.release.duration"} {
					if len(h.points(t, name)) != 1 {
						t.Errorf("%s not recorded", name)
					}
				}
			}
		})
	}
}

func miniredisConn(t *testing.T, m *miniredis.Miniredis) *goredis.Conn {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return goredis.New(rdb)
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

// A release hands the lock to a queued waiter: the waiter's relock.Obtain
// spans its whole wait, with handed_over, contended, two tries and its
// fence; relock.obtain.duration says contended; relock.key on the
// measurements with WithKeyAttribute(true).
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

	key := relockotel.KeyAttr.String("otel:handover")
	for c, want := range map[bool]uint64{true: 1, false: 1} {
		if n, _ := h.hist(t, "relock.obtain.duration", key, relockotel.ContendedAttr.Bool(c)); n != want {
			t.Errorf("relock.obtain.duration{contended=%v}: %d, want %d", c, n, want)
		}
	}
	if n, _ := h.hist(t, "relock.hold.duration", key); n != 2 {
		t.Errorf("relock.hold.duration: %d, want 2", n)
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
	if !s.EndTime().Equal(waited.Time) || s.EndTime().Sub(s.StartTime()) != waited.Wait || waited.Wait <= 0 {
		t.Errorf("relock.Obtain span [%v, %v], want the wait %v ending %v", s.StartTime(), s.EndTime(), waited.Wait, waited.Time)
	}
	if v, _ := attr(s, relockotel.TriesAttr); v.AsInt64() != 2 {
		t.Errorf("relock.tries = %d, want 2", v.AsInt64())
	}
	if v, _ := attr(s, relockotel.ContendedAttr); !v.AsBool() {
		t.Error("relock.contended false on a hand-over")
	}
	if v, _ := attr(s, relockotel.FenceAttr); v.AsInt64() != r.l.Fence() || r.l.Fence() <= held.Fence() {
		t.Errorf("relock.fence = %d, want the waiter's %d (above the holder's %d)", v.AsInt64(), r.l.Fence(), held.Fence())
	}
}

func TestErrorType(t *testing.T) {
	for err, want := range map[error]string{
		nil: "",
		fmt.Errorf("x: %w: %w", relock.ErrUnavailable, context.DeadlineExceeded): "unavailable",
		fmt.Errorf("x: %w", relock.ErrNoPermission):                              "no_permission",
		fmt.Errorf("x: %w", relock.ErrWrongType):                                 "wrong_type",
		fmt.Errorf("x: %w", relock.ErrTooFewReplicas):                            "too_few_replicas",
		fmt.Errorf("x: %w", relock.ErrClosed):                                    "closed",
		fmt.Errorf("x: %w", relock.ErrUnsupported):                               "unsupported",
		fmt.Errorf("x: %w: %w", relock.ErrLost, relock.ErrNotHeld):               "not_held",
		fmt.Errorf("x: %w", relock.ErrLost):                                      "expired",
		fmt.Errorf("x: %w: %w", relock.ErrNotObtained, context.Canceled):         "canceled",
		fmt.Errorf("x: %w: %w", relock.ErrNotObtained, context.DeadlineExceeded): "deadline_exceeded",
		fmt.Errorf("x: %w", relock.ErrNotObtained):                               "not_obtained",
		errors.New("ERR something"):                                              "_OTHER",
	} {
		if got := relockotel.ErrorType(err); got != want {
			t.Errorf("ErrorType(%v) = %q, want %q", err, got, want)
		}
	}
}

// Events given without a context, and kinds it does not know, do not
// break it: spans are roots, nothing is left open.
func TestObserveWithoutContext(t *testing.T) {
	h := newHarness(t)
	h.otel.Observe(relock.Event{Kind: relock.EventKind(200), Key: "k"})
	h.otel.Observe(relock.Event{Kind: relock.EventObtained, Key: "k", Tries: 1})
	h.otel.Observe(relock.Event{Kind: relock.EventReleased, Key: "k"})
	h.otel.Observe(relock.Event{Kind: relock.EventDone, Key: "k"})
	if s := h.one(t, "relock.Obtain"); s.Parent().IsValid() {
		t.Error("relock.Obtain without a context has a parent")
	}
	if n, _ := h.hist(t, "relock.hold.duration"); n != 1 {
		t.Errorf("relock.hold.duration: %d, want 1", n)
	}
	if _, err := relockotel.NewObserver(nil); err != nil {
		t.Errorf("NewObserver(nil) = %v", err)
	}
}

func BenchmarkObserve(b *testing.B) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	obs, err := relockotel.NewMetricsObserver(relockotel.WithMeterProvider(mp))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	e := relock.Event{Kind: relock.EventObtained, Key: "k", Tries: 1, Wait: time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		obs.ObserveContext(ctx, e)
	}
}
