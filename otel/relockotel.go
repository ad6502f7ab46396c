// Package relockotel turns relock's lock events into OpenTelemetry spans
// and metrics, as go-redis's redisotel does for Redis commands and otelsql
// for database/sql.
//
//	obs, err := relockotel.NewObserver() // spans and metrics, the global providers
//	if err != nil { ... }
//	locker, err := relock.New(conn, relock.WithObserver(obs))
//
// [NewTracingObserver] records spans only (redisotel's InstrumentTracing),
// [NewMetricsObserver] metrics only (InstrumentMetrics), [NewObserver]
// both. A Client has one observer: give it the one that records what you
// want.
//
// It is a module of its own (github.com/relock-go/relock/otel), not a
// package of the relock module, so that importing relock never puts
// OpenTelemetry in a program's build graph or go.sum: only programs that
// import relockotel get it. The core emits events through the small
// relock.Observer interface; this package's Observer is a
// relock.ContextObserver, so it gets the caller's context with each event.
//
// # Spans
//
// All of kind Internal, under the instrumentation scope [ScopeName]. A
// lock obtained in a request makes this tree in the request's trace:
//
//	request span
//	├── relock.Obtain   from the call to Obtain to its return
//	└── relock.Hold     from Lock.ObtainedAt to the release or loss; linked to relock.Obtain
//	    ├── relock.Refresh   one per refresh, by Lock.Refresh or auto-refresh
//	    ├── ...
//	    └── relock.Release   the call that deletes the key (Lock.Release, Do, Client.Close)
//
// relock.Refresh and relock.Release measure the call to Redis: they start
// before it is sent and end when it returns. An auto-refresh runs in the
// background but its span is still a child of relock.Hold. Within Client.Do
// the function's context carries relock.Hold as its current span, so the
// work done under the lock nests under it. Redis commands sent by relock
// are traced by the Redis client's own instrumentation (redisotel), as
// children of the caller's span, not of relock.Refresh or relock.Release.
// A lock made by Client.Attach has no relock.Hold: its relock.Release is a
// root span. An auto-refreshed lock makes one relock.Refresh span every
// third of its TTL; sample accordingly.
//
// A failed call has status Error, the error recorded as an exception
// event, and error.type. A lock that ends lost has an errored relock.Hold.
// An auto-refresh in flight when Release or Client.Close stops the
// refresher ends with error.type "canceled".
//
// # Metrics
//
// Histograms, in seconds, under [ScopeName]:
//
//   - relock.obtain.duration: how long each Obtain ran, from the call to
//     the lock or the failure, waiting for a taken lock included.
//     Attributes: relock.contended (the call found the lock taken: more
//     than one try, unless Redis was unavailable; a hand-over; or not
//     obtained because taken), error.type when not obtained.
//   - relock.hold.duration: how long a lock was held, from
//     Lock.ObtainedAt to its release or loss. error.type when lost.
//   - relock.refresh.duration: each refresh call, by hand or automatic.
//     error.type when it failed.
//   - relock.release.duration: each release call. error.type when it
//     failed.
//
// A histogram counts what it measures, so there are no separate counters:
// locks obtained are relock.obtain.duration without error.type, locks lost
// relock.hold.duration with it, and so on.
//
// # Attributes
//
// On every span and measurement: db.system.name ("redis"), and with
// [WithServer] server.address and server.port, as the Redis client's own
// spans carry them. On spans: relock.key (the lock's Redis key);
// on measurements only with [WithKeyAttribute], since each key makes its
// own time series. error.type follows OpenTelemetry's conventions: set
// only when the operation failed, a low-cardinality class from
// [ErrorType]. The other attributes are relock's own:
//
//   - relock.contended (bool): relock.Obtain, relock.obtain.duration.
//   - relock.handed_over (bool): relock.Obtain; a release handed the lock
//     to this waiter.
//   - relock.tries (int): relock.Obtain; tries sent.
//   - relock.ttl (double, s): relock.Obtain, relock.Hold (the obtain's
//     TTL), relock.Refresh (the TTL it asks for).
//   - relock.fence (int): relock.Obtain, relock.Hold, relock.Refresh,
//     relock.Release, for a lock with a fencing number.
//
// What it does not cover: calls rejected before anything was sent (bad
// arguments), and the Redis commands themselves (use the Redis client's
// instrumentation).
package relockotel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/relock-go/relock"
)

// ScopeName is the instrumentation scope of the meter and tracer.
const ScopeName = "github.com/relock-go/relock/otel"

// Attribute keys. The first four are OpenTelemetry's semantic
// conventions; the others are relock's.
const (
	ErrorTypeAttr     = attribute.Key("error.type")
	DBSystemNameAttr  = attribute.Key("db.system.name")
	ServerAddressAttr = attribute.Key("server.address")
	ServerPortAttr    = attribute.Key("server.port")

	KeyAttr        = attribute.Key("relock.key")
	ContendedAttr  = attribute.Key("relock.contended")
	HandedOverAttr = attribute.Key("relock.handed_over")
	TriesAttr      = attribute.Key("relock.tries")
	FenceAttr      = attribute.Key("relock.fence")
	TTLAttr        = attribute.Key("relock.ttl")
)

// An Option configures NewObserver, NewTracingObserver and
// NewMetricsObserver.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	mp     metric.MeterProvider
	tp     trace.TracerProvider
	key    bool
	server []attribute.KeyValue
}

// WithMeterProvider sets where the metrics go; the default is the global
// provider (otel.GetMeterProvider) at the time the observer is made.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.mp = mp })
}

// WithTracerProvider sets where the spans go; the default is the global
// provider (otel.GetTracerProvider) at the time the observer is made.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tp = tp })
}

// WithKeyAttribute adds the lock's key as attribute relock.key to every
// measurement when on. It is off by default: each distinct key makes its
// own time series. Spans always carry it.
func WithKeyAttribute(on bool) Option {
	return optionFunc(func(c *config) { c.key = on })
}

// WithServer sets server.address and server.port, which relock cannot
// know (its driver interface carries no address), from addr, the Redis
// server's "host:port" as given to the Redis client. Give the same address
// as the Redis client's instrumentation reports, so that a backend can
// join relock's spans and metrics with the client's. An addr without a
// port sets server.address only.
func WithServer(addr string) Option {
	return optionFunc(func(c *config) {
		c.server = nil
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			if addr != "" {
				c.server = append(c.server, ServerAddressAttr.String(addr))
			}
			return
		}
		c.server = append(c.server, ServerAddressAttr.String(host))
		if p, err := strconv.Atoi(port); err == nil {
			c.server = append(c.server, ServerPortAttr.Int(p))
		}
	})
}

// Observer is a relock.ContextObserver that records spans, metrics or
// both. It is safe for concurrent use. Make one with NewObserver,
// NewTracingObserver or NewMetricsObserver.
type Observer struct {
	tracer trace.Tracer // nil: no spans
	meters bool         // false: no metrics
	key    bool
	common []attribute.KeyValue // db.system.name, server.*

	obtainDuration  metric.Float64Histogram
	holdDuration    metric.Float64Histogram
	refreshDuration metric.Float64Histogram
	releaseDuration metric.Float64Histogram

	// Measurement options made once per attribute set, when the key is
	// not recorded.
	sets sync.Map // setKey -> metric.MeasurementOption
}

type setKey struct {
	errType   string
	contended int8 // 0: absent, 1 false, 2 true
}

var (
	_ relock.ContextObserver = (*Observer)(nil)
)

// Histogram bucket boundaries, in seconds: obtain from half a millisecond
// (an uncontended lock on a near server) to a minute of waiting; hold from
// a millisecond to an hour; calls from a tenth of a millisecond to ten
// seconds.
var (
	obtainBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	holdBuckets   = []float64{0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600}
	callBuckets   = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
)

// NewObserver returns an Observer that records spans and metrics on the
// providers the options give (the global ones by default). It fails only
// if the meter refuses to create an instrument.
func NewObserver(opts ...Option) (*Observer, error) { return newObserver(true, true, opts) }

// NewTracingObserver returns an Observer that records spans only.
func NewTracingObserver(opts ...Option) (*Observer, error) { return newObserver(true, false, opts) }

// NewMetricsObserver returns an Observer that records metrics only. It
// fails only if the meter refuses to create an instrument.
func NewMetricsObserver(opts ...Option) (*Observer, error) { return newObserver(false, true, opts) }

func newObserver(traces, metrics bool, opts []Option) (*Observer, error) {
	cfg := config{}
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	o := &Observer{key: cfg.key, meters: metrics}
	o.common = append([]attribute.KeyValue{DBSystemNameAttr.String("redis")}, cfg.server...)
	if traces {
		if cfg.tp == nil {
			cfg.tp = otel.GetTracerProvider()
		}
		o.tracer = cfg.tp.Tracer(ScopeName)
	}
	if !metrics {
		return o, nil
	}
	if cfg.mp == nil {
		cfg.mp = otel.GetMeterProvider()
	}
	meter := cfg.mp.Meter(ScopeName)
	var errs []error
	hist := func(name, desc string, buckets []float64) metric.Float64Histogram {
		h, err := meter.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc), metric.WithExplicitBucketBoundaries(buckets...))
		errs = append(errs, err)
		return h
	}
	o.obtainDuration = hist("relock.obtain.duration", "How long Obtain ran, waiting for a taken lock included.", obtainBuckets)
	o.holdDuration = hist("relock.hold.duration", "How long a lock was held, until its release or loss.", holdBuckets)
	o.refreshDuration = hist("relock.refresh.duration", "How long each refresh of a lock took.", callBuckets)
	o.releaseDuration = hist("relock.release.duration", "How long each release of a lock took.", callBuckets)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("relockotel: %w", err)
	}
	return o, nil
}

// ErrorType classifies an error of relock as the error.type attribute
// does: "" for nil, then the first that matches of "unavailable"
// (relock.ErrUnavailable: Redis did not answer or refused for now),
// "no_permission" (relock.ErrNoPermission), "wrong_type"
// (relock.ErrWrongType), "too_few_replicas" (relock.ErrTooFewReplicas),
// "closed" (relock.ErrClosed), "unsupported" (relock.ErrUnsupported),
// "not_held" (relock.ErrNotHeld: a call found the key gone or another
// owner's), "expired" (relock.ErrLost otherwise: the validity ran out with
// no successful refresh), "canceled" and "deadline_exceeded" (the
// caller's context ended: for Obtain, while the lock was taken),
// "not_obtained" (relock.ErrNotObtained: the lock stayed taken until the
// retry strategy or the wait budget ran out), and "_OTHER".
func ErrorType(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, relock.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, relock.ErrNoPermission):
		return "no_permission"
	case errors.Is(err, relock.ErrWrongType):
		return "wrong_type"
	case errors.Is(err, relock.ErrTooFewReplicas):
		return "too_few_replicas"
	case errors.Is(err, relock.ErrClosed):
		return "closed"
	case errors.Is(err, relock.ErrUnsupported):
		return "unsupported"
	case errors.Is(err, relock.ErrNotHeld):
		return "not_held"
	case errors.Is(err, relock.ErrLost):
		return "expired"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	case errors.Is(err, relock.ErrNotObtained):
		return "not_obtained"
	default:
		return "_OTHER"
	}
}

// measure returns the measurement option for error.type errType (absent
// when "") and relock.contended (0 absent, 1 false, 2 true), with the
// common attributes and, when recorded, the key.
func (o *Observer) measure(e *relock.Event, errType string, contended int8) metric.MeasurementOption {
	k := setKey{errType, contended}
	if !o.key {
		if opt, ok := o.sets.Load(k); ok {
			return opt.(metric.MeasurementOption)
		}
	}
	kvs := append([]attribute.KeyValue(nil), o.common...)
	if errType != "" {
		kvs = append(kvs, ErrorTypeAttr.String(errType))
	}
	if contended != 0 {
		kvs = append(kvs, ContendedAttr.Bool(contended == 2))
	}
	if o.key {
		return metric.WithAttributes(append(kvs, KeyAttr.String(e.Key))...)
	}
	opt := metric.WithAttributeSet(attribute.NewSet(kvs...))
	o.sets.Store(k, opt)
	return opt
}

// spanAttrs returns the attributes every span of e carries, then kvs.
func (o *Observer) spanAttrs(e *relock.Event, kvs ...attribute.KeyValue) []attribute.KeyValue {
	out := make([]attribute.KeyValue, 0, len(o.common)+len(kvs)+3)
	out = append(append(out, o.common...), KeyAttr.String(e.Key))
	if e.Fence != 0 {
		out = append(out, FenceAttr.Int64(e.Fence))
	}
	return append(out, kvs...)
}

// internal is the span kind of every span.
var internal = trace.WithSpanKind(trace.SpanKindInternal)

// The values the observer puts in the contexts it returns.
type (
	holdKey struct{}
	callKey struct{}
)

// hold is a lock's relock.Hold span, in the lock's context.
type hold struct {
	key   string
	span  trace.Span
	ended atomic.Bool
}

// call is a refresh or release in progress, in its context.
type call struct {
	kind  relock.EventKind // EventRefreshing or EventReleasing
	key   string
	start time.Time
	span  trace.Span // nil without tracing
}

// Observe records e with no context: spans are roots, and a refresh or
// release without its beginning is not measured. relock calls
// ObserveContext instead.
func (o *Observer) Observe(e relock.Event) { o.ObserveContext(context.Background(), e) }

// ObserveContext records e, with ctx the context relock gives it (see
// relock.ContextObserver). It ignores kinds it does not know.
func (o *Observer) ObserveContext(ctx context.Context, e relock.Event) context.Context {
	switch e.Kind {
	case relock.EventObtained, relock.EventNotObtained:
		return o.observeObtain(ctx, &e)
	case relock.EventRefreshing, relock.EventReleasing:
		return o.begin(ctx, &e)
	case relock.EventDone:
		o.done(ctx, &e)
	case relock.EventReleased, relock.EventLost:
		o.observeEnd(ctx, &e)
	}
	return ctx
}

func (o *Observer) observeObtain(ctx context.Context, e *relock.Event) context.Context {
	errType := ""
	if e.Kind == relock.EventNotObtained {
		errType = ErrorType(e.Err)
		if errType == "" {
			errType = "_OTHER"
		}
	}
	contended := e.Tries > 1 && errType != "unavailable" || e.HandedOver || errType == "not_obtained" ||
		e.Tries >= 1 && (errType == "canceled" || errType == "deadline_exceeded")
	if o.meters {
		c := int8(1)
		if contended {
			c = 2
		}
		o.obtainDuration.Record(ctx, e.Wait.Seconds(), o.measure(e, errType, c))
	}
	if o.tracer == nil {
		return ctx
	}
	kvs := o.spanAttrs(e, TriesAttr.Int(e.Tries), HandedOverAttr.Bool(e.HandedOver), ContendedAttr.Bool(contended), TTLAttr.Float64(e.TTL.Seconds()))
	if errType != "" {
		kvs = append(kvs, ErrorTypeAttr.String(errType))
	}
	_, span := o.tracer.Start(ctx, "relock.Obtain", trace.WithTimestamp(e.Time.Add(-e.Wait)), internal, trace.WithAttributes(kvs...))
	endSpan(span, e.Err, e.Time)
	if e.Kind != relock.EventObtained {
		return ctx
	}
	hkvs := o.spanAttrs(e, TTLAttr.Float64(e.TTL.Seconds()))
	hctx, hspan := o.tracer.Start(ctx, "relock.Hold", trace.WithTimestamp(e.Time.Add(-e.Held)), internal,
		trace.WithAttributes(hkvs...), trace.WithLinks(trace.Link{SpanContext: span.SpanContext()}))
	return context.WithValue(hctx, holdKey{}, &hold{key: e.Key, span: hspan})
}

// begin starts a refresh or release call: its span is a child of the
// lock's relock.Hold.
func (o *Observer) begin(ctx context.Context, e *relock.Event) context.Context {
	c := &call{kind: e.Kind, key: e.Key, start: e.Time}
	if o.tracer != nil {
		name, kvs := "relock.Release", o.spanAttrs(e)
		if e.Kind == relock.EventRefreshing {
			name, kvs = "relock.Refresh", append(kvs, TTLAttr.Float64(e.TTL.Seconds()))
		}
		ctx, c.span = o.tracer.Start(ctx, name, trace.WithTimestamp(e.Time), internal, trace.WithAttributes(kvs...))
	}
	return context.WithValue(ctx, callKey{}, c)
}

// done ends the call whose context ctx is.
func (o *Observer) done(ctx context.Context, e *relock.Event) {
	c, _ := ctx.Value(callKey{}).(*call)
	if c == nil || c.key != e.Key {
		return
	}
	errType := ErrorType(e.Err)
	if o.meters {
		h := o.releaseDuration
		if c.kind == relock.EventRefreshing {
			h = o.refreshDuration
		}
		h.Record(ctx, e.Time.Sub(c.start).Seconds(), o.measure(e, errType, 0))
	}
	if c.span != nil {
		if errType != "" {
			c.span.SetAttributes(ErrorTypeAttr.String(errType))
		}
		endSpan(c.span, e.Err, e.Time)
	}
}

// observeEnd records the end of a lock: the hold histogram, and the end
// of its relock.Hold span.
func (o *Observer) observeEnd(ctx context.Context, e *relock.Event) {
	var errType string
	if e.Kind == relock.EventLost {
		if errType = ErrorType(e.Err); errType == "" {
			errType = "_OTHER"
		}
	}
	if o.meters {
		o.holdDuration.Record(ctx, e.Held.Seconds(), o.measure(e, errType, 0))
	}
	h, _ := ctx.Value(holdKey{}).(*hold)
	if h == nil || h.key != e.Key || !h.ended.CompareAndSwap(false, true) {
		return
	}
	if errType != "" {
		h.span.SetAttributes(ErrorTypeAttr.String(errType))
	}
	endSpan(h.span, e.Err, e.Time)
}

// endSpan ends span at t, with err, if any, recorded as its error.
func endSpan(span trace.Span, err error, t time.Time) {
	if err != nil {
		span.RecordError(err, trace.WithTimestamp(t))
		span.SetStatus(codes.Error, err.Error())
	}
	span.End(trace.WithTimestamp(t))
}
