// Package harness is what relockotel's tests share: a [relockotel.Observer]
// over in-memory SDK providers that also records the events it was given,
// helpers to read its spans and metrics, and the checks the tests run on
// more than one kind of connection ([SpanTree]).
//
// Only tests import it: the package's own tests (on the in-memory driver)
// and those of internal/scripttest (on miniredis, the script path). It
// imports no Redis client and no miniredis, so that a module importing
// relockotel gets neither in its go.sum.
package harness

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
	relockotel "github.com/relock-go/relock/otel"
)

// Harness is a relockotel.Observer over in-memory SDK providers, and a
// record of the events it was given.
type Harness struct {
	Reader *sdkmetric.ManualReader
	Spans  *tracetest.SpanRecorder
	TP     *sdktrace.TracerProvider
	Otel   *relockotel.Observer

	mu     sync.Mutex
	events []relock.Event
}

// NewFunc is one of relockotel's constructors.
type NewFunc func(...relockotel.Option) (*relockotel.Observer, error)

// New returns a Harness whose observer is relockotel.NewObserver with
// opts.
func New(t *testing.T, opts ...relockotel.Option) *Harness {
	t.Helper()
	return NewWith(t, relockotel.NewObserver, opts...)
}

// NewWith returns a Harness whose observer newObs makes with opts, the
// harness's providers first.
func NewWith(t *testing.T, newObs NewFunc, opts ...relockotel.Option) *Harness {
	t.Helper()
	h := &Harness{Reader: sdkmetric.NewManualReader(), Spans: tracetest.NewSpanRecorder()}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.Reader))
	h.TP = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.Spans))
	t.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = h.TP.Shutdown(context.Background())
	})
	obs, err := newObs(append([]relockotel.Option{relockotel.WithMeterProvider(mp), relockotel.WithTracerProvider(h.TP)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	h.Otel = obs
	return h
}

// Observe passes e to the OpenTelemetry observer, then records it.
func (h *Harness) Observe(e relock.Event) { h.ObserveContext(context.Background(), e) }

// ObserveContext passes e to the OpenTelemetry observer, then records it:
// once a test sees an event, its metrics and spans are there.
func (h *Harness) ObserveContext(ctx context.Context, e relock.Event) context.Context {
	ctx = h.Otel.ObserveContext(ctx, e)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e)
	return ctx
}

// All returns the events observed so far.
func (h *Harness) All() []relock.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}

// WaitFor waits for the n-th event of kind, for a generous while.
func (h *Harness) WaitFor(t *testing.T, kind relock.EventKind, n int) relock.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		seen := 0
		for _, e := range h.All() {
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

// Metrics collects the metrics recorded so far, checking their scope.
func (h *Harness) Metrics(t *testing.T) []metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.Reader.Collect(context.Background(), &rm); err != nil {
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

// Points returns histogram name's data points, checking its unit.
func (h *Harness) Points(t *testing.T, name string) []metricdata.HistogramDataPoint[float64] {
	t.Helper()
	for _, m := range h.Metrics(t) {
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

// Hist returns histogram name's count and sum for exactly kvs plus
// db.system.name.
func (h *Harness) Hist(t *testing.T, name string, kvs ...attribute.KeyValue) (uint64, float64) {
	t.Helper()
	want := attribute.NewSet(append(kvs, relockotel.DBSystemNameAttr.String("redis"))...)
	for _, dp := range h.Points(t, name) {
		if dp.Attributes.Equals(&want) {
			return dp.Count, dp.Sum
		}
	}
	return 0, 0
}

// Ended returns the ended spans called name.
func (h *Harness) Ended(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range h.Spans.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// One returns the one ended span called name.
func (h *Harness) One(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	s := h.Ended(name)
	if len(s) != 1 {
		t.Fatalf("%d %s spans, want 1", len(s), name)
	}
	return s[0]
}

// Attr returns s's attribute k.
func Attr(s sdktrace.ReadOnlySpan, k attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// SpanTree checks that the spans of a lock on conn join the caller's
// trace: relock.Obtain and relock.Hold are children of the caller's span,
// relock.Hold is linked to relock.Obtain, and the refreshes (auto or not)
// and the release are children of relock.Hold; Do's function runs under
// relock.Hold.
func SpanTree(t *testing.T, conn driver.Conn) {
	t.Helper()
	h := New(t)
	c, err := relock.New(conn, relock.WithObserver(h))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, req := h.TP.Tracer("test").Start(context.Background(), "request")
	var fnSpan trace.SpanContext
	err = c.Do(ctx, "otel:tree", 600*time.Millisecond, func(fctx context.Context) error {
		fnSpan = trace.SpanContextFromContext(fctx)
		h.WaitFor(t, relock.EventRefreshed, 2) // two auto-refreshes
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	req.End()

	reqSC := req.SpanContext()
	obtain, hold := h.One(t, "relock.Obtain"), h.One(t, "relock.Hold")
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
	refreshes := h.Ended("relock.Refresh")
	if len(refreshes) < 2 {
		t.Errorf("%d relock.Refresh spans, want at least 2", len(refreshes))
	}
	for _, s := range append(refreshes, h.One(t, "relock.Release")) {
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
	if got := len(h.Spans.Ended()); got != 4+len(refreshes) {
		t.Errorf("%d spans, want request, Obtain, Hold, Release and the refreshes", got)
	}
}
