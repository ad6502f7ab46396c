package relockotel_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/memdriver"
	relockotel "github.com/relock-go/relock/otel"
	"github.com/relock-go/relock/otel/internal/harness"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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

// The spans of a lock join the caller's trace (harness.SpanTree), on the
// WATCH path (memdriver); internal/scripttest checks the script path.
func TestSpanTree(t *testing.T) { harness.SpanTree(t, memdriver.New().Conn()) }

// relock.Refresh and relock.Release measure the call to Redis, and so
// do their histograms; attribute names follow the conventions.
func TestCallSpansAndAttributes(t *testing.T) {
	h := harness.New(t, relockotel.WithServer("redis.example:6380"))
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
		s := h.One(t, name)
		if d := s.EndTime().Sub(s.StartTime()); d < delay {
			t.Errorf("%s lasted %v, want at least the call's %v", name, d, delay)
		}
	}
	for _, name := range []string{"relock.refresh.duration", "relock.release.duration"} {
		n, sum := h.Hist(t, name, relockotel.ServerAddressAttr.String("redis.example"), relockotel.ServerPortAttr.Int(6380))
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
		s := h.One(t, name)
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
	for _, m := range h.Metrics(t) {
		names = append(names, m.Name)
	}
	slices.Sort(names)
	if want := []string{"relock.hold.duration", "relock.obtain.duration", "relock.refresh.duration", "relock.release.duration"}; !slices.Equal(names, want) {
		t.Errorf("metrics %v, want %v", names, want)
	}
	srv := []attribute.KeyValue{relockotel.ServerAddressAttr.String("redis.example"), relockotel.ServerPortAttr.Int(6380)}
	if n, _ := h.Hist(t, "relock.obtain.duration", append(srv, relockotel.ContendedAttr.Bool(false))...); n != 1 {
		t.Errorf("relock.obtain.duration{contended=false}: %d, want 1", n)
	}
	if n, _ := h.Hist(t, "relock.hold.duration", srv...); n != 1 {
		t.Errorf("relock.hold.duration{}: %d, want 1", n)
	}
}

// A refresh that finds the key gone: relock.Refresh and relock.Hold end
// errored with error.type not_held, and so are the histograms.
func TestLostNotHeld(t *testing.T) {
	h := harness.New(t)
	store := memdriver.New()
	c, err := relock.New(store.Conn(), relock.WithObserver(h))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, req := h.TP.Tracer("test").Start(context.Background(), "request")
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
	hold, refresh := h.One(t, "relock.Hold"), h.One(t, "relock.Refresh")
	for _, s := range []sdktrace.ReadOnlySpan{hold, refresh} {
		if v, _ := harness.Attr(s, relockotel.ErrorTypeAttr); v.AsString() != "not_held" || s.Status().Code != codes.Error {
			t.Errorf("%s: error.type %q, status %v; want not_held, Error", s.Name(), v.AsString(), s.Status())
		}
	}
	if refresh.Parent().SpanID() != hold.SpanContext().SpanID() {
		t.Error("relock.Refresh not a child of relock.Hold")
	}
	if n := len(h.Ended("relock.Release")); n != 0 {
		t.Errorf("%d relock.Release spans for a release that sent nothing", n)
	}
	et := relockotel.ErrorTypeAttr.String("not_held")
	if n, _ := h.Hist(t, "relock.hold.duration", et); n != 1 {
		t.Errorf("relock.hold.duration{error.type=not_held}: %d, want 1", n)
	}
	if n, _ := h.Hist(t, "relock.refresh.duration", et); n != 1 {
		t.Errorf("relock.refresh.duration{error.type=not_held}: %d, want 1", n)
	}
}

// Auto-refreshes that fail, then the loss noticed by the validity timer:
// errored relock.Refresh spans under relock.Hold, which ends with
// error.type expired, in the caller's trace although the timer noticed it.
func TestLostExpired(t *testing.T) {
	const ttl = 300 * time.Millisecond
	conn := &slowConn{Conn: memdriver.New().Conn()}
	h := harness.New(t)
	c, err := relock.New(conn, relock.WithObserver(h))
	if err != nil {
		t.Fatal(err)
	}
	ctx, req := h.TP.Tracer("test").Start(context.Background(), "request")
	if _, err := c.Obtain(ctx, "otel:expire", ttl, relock.WithAutoRefresh()); err != nil {
		t.Fatal(err)
	}
	req.End()
	conn.fail.Store(true)
	h.WaitFor(t, relock.EventLost, 1)
	_ = c.Close()
	hold := h.One(t, "relock.Hold")
	if v, _ := harness.Attr(hold, relockotel.ErrorTypeAttr); v.AsString() != "expired" || hold.Status().Code != codes.Error {
		t.Errorf("relock.Hold error.type %q status %v, want expired, Error", v.AsString(), hold.Status())
	}
	if hold.Parent().SpanID() != req.SpanContext().SpanID() {
		t.Error("relock.Hold not a child of the caller's span")
	}
	failed := 0
	for _, s := range h.Ended("relock.Refresh") {
		if s.Parent().SpanID() != hold.SpanContext().SpanID() {
			t.Errorf("auto-refresh span parent %v, want relock.Hold", s.Parent().SpanID())
		}
		if s.Status().Code == codes.Error {
			failed++
			if v, ok := harness.Attr(s, relockotel.ErrorTypeAttr); !ok || v.AsString() == "" {
				t.Error("failed relock.Refresh without error.type")
			}
		}
	}
	if failed == 0 {
		t.Error("no failed relock.Refresh span")
	}
	if n, _ := h.Hist(t, "relock.hold.duration", relockotel.ErrorTypeAttr.String("expired")); n != 1 {
		t.Errorf("relock.hold.duration{error.type=expired}: %d, want 1", n)
	}
}

// Client.Close gives back an auto-refreshed lock: relock.Release under
// relock.Hold, which ends unerrored.
func TestClose(t *testing.T) {
	h := harness.New(t)
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
	hold, rel := h.One(t, "relock.Hold"), h.One(t, "relock.Release")
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
	h := harness.New(t)
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
		if n, _ := h.Hist(t, "relock.obtain.duration", relockotel.ErrorTypeAttr.String(w.errType), w.c); n != w.n {
			t.Errorf("relock.obtain.duration{error.type=%s, contended=%v}: %d, want %d", w.errType, w.c.Value.AsBool(), n, w.n)
		}
	}
	errored := 0
	for _, s := range h.Ended("relock.Obtain") {
		if s.Status().Code == codes.Error {
			errored++
			if _, ok := harness.Attr(s, relockotel.ErrorTypeAttr); !ok {
				t.Errorf("errored relock.Obtain without error.type: %v", s.Attributes())
			}
		}
	}
	if errored != 4 || len(h.Ended("relock.Hold")) != 0 {
		t.Errorf("%d errored relock.Obtain spans, want 4; %d relock.Hold, want none ended", errored, len(h.Ended("relock.Hold")))
	}
}

// NewTracingObserver records spans only, NewMetricsObserver metrics only;
// the lock's life is the same under both.
func TestTracingOnlyMetricsOnly(t *testing.T) {
	for _, tc := range []struct {
		name             string
		new              harness.NewFunc
		spans, histogram bool
	}{
		{"tracing", relockotel.NewTracingObserver, true, false},
		{"metrics", relockotel.NewMetricsObserver, false, true},
		{"both", relockotel.NewObserver, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := harness.NewWith(t, tc.new)
			c, err := relock.New(memdriver.New().Conn(), relock.WithObserver(h))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, req := h.TP.Tracer("test").Start(context.Background(), "request")
			var fnSpan trace.SpanContext
			if err := c.Do(ctx, "otel:only", time.Minute, func(fctx context.Context) error {
				fnSpan = trace.SpanContextFromContext(fctx)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			req.End()
			if got := len(h.Spans.Ended()) > 1; got != tc.spans {
				t.Errorf("%d spans (request included)", len(h.Spans.Ended()))
			}
			if got := len(h.Metrics(t)) > 0; got != tc.histogram {
				t.Errorf("%d metrics", len(h.Metrics(t)))
			}
			if !tc.spans && !fnSpan.Equal(req.SpanContext()) {
				t.Error("without tracing, Do's function does not run under the caller's span")
			}
			if tc.histogram {
				for _, name := range []string{"relock.obtain.duration", "relock.hold.duration", "relock.release.duration"} {
					if len(h.Points(t, name)) != 1 {
						t.Errorf("%s not recorded", name)
					}
				}
			}
		})
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
	h := harness.New(t)
	h.Otel.Observe(relock.Event{Kind: relock.EventKind(200), Key: "k"})
	h.Otel.Observe(relock.Event{Kind: relock.EventObtained, Key: "k", Tries: 1})
	h.Otel.Observe(relock.Event{Kind: relock.EventReleased, Key: "k"})
	h.Otel.Observe(relock.Event{Kind: relock.EventDone, Key: "k"})
	if s := h.One(t, "relock.Obtain"); s.Parent().IsValid() {
		t.Error("relock.Obtain without a context has a parent")
	}
	if n, _ := h.Hist(t, "relock.hold.duration"); n != 1 {
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
