// Package relockotel turns relock's lock events into OpenTelemetry metrics
// and spans.
//
//	obs, err := relockotel.NewObserver() // the global providers
//	if err != nil { ... }
//	locker, err := relock.New(conn, relock.WithObserver(obs))
//
// It is a module of its own (github.com/relock-go/relock/otel), not a
// package of the relock module, so that importing relock never puts
// OpenTelemetry in a program's build graph or go.sum: only programs that
// import relockotel get it. The core emits events through the small
// relock.Observer interface; this package is one Observer.
//
// # Metrics
//
// All under the instrumentation scope [ScopeName]. Durations are in
// seconds. With [WithKeyAttribute](true) every measurement also carries
// relock.key; it is off by default because lock names can be numerous
// (one per job, per user...) and each one makes a time series.
//
//   - relock.obtain.duration (histogram, s): how long each Obtain ran, from
//     the call to the lock or the failure, waiting for a taken lock
//     included. Attribute relock.outcome: obtained or not_obtained.
//   - relock.hold.duration (histogram, s): how long a lock was held, from
//     Lock.ObtainedAt to its release or loss. Attribute relock.end:
//     released or lost.
//   - relock.obtained (counter): locks obtained. Attribute
//     relock.handed_over: true when a release handed the lock to this
//     waiter.
//   - relock.not_obtained (counter): Obtain calls that failed. Attribute
//     relock.reason: taken (the lock was held until the retry strategy or
//     the wait budget ran out), context (the caller's context ended while
//     the lock was held), unavailable (no try found the lock held: Redis
//     did not answer or refused, relock.ErrUnavailable), no_permission
//     (relock.ErrNoPermission), error (anything else: an error reply
//     relock does not know, the client was closed, ...).
//   - relock.contended (counter): Obtain calls that found the lock taken:
//     more than one try (unless the call ended unavailable), a hand-over,
//     or not obtained because taken.
//   - relock.released (counter): locks released.
//   - relock.refreshed (counter): successful refreshes, auto or not.
//   - relock.refresh_failed (counter): refreshes that failed without
//     telling whether the lock is still ours (Redis error, timeout).
//   - relock.lost (counter): locks that ended before Release. Attribute
//     relock.reason: not_held (a refresh found the key gone or another
//     owner's) or expired (the validity ran out with no successful
//     refresh).
//
// # Spans
//
// An Observer is told of an event after the fact and gets no context, so
// the spans are made afterwards with explicit timestamps, and each starts
// a trace of its own: they are not children of the caller's span. They
// cover:
//
//   - relock.Obtain, from the call to its end (Event.Time - Event.Wait to
//     Event.Time), with relock.tries, relock.handed_over, relock.fence;
//     status Error with the error recorded when the lock was not obtained.
//   - relock.Hold, from ObtainedAt to the release or loss; status Error
//     when the lock was lost.
//   - relock.Release and relock.Refresh: instants (start = end) at the
//     time the call ended; the events do not carry how long the call to
//     Redis took. A failed refresh has status Error. An auto-refreshed lock
//     makes one relock.Refresh span per refresh (every TTL/3); sample
//     accordingly.
//
// What it does not cover: the time of each Redis command (use the Redis
// client's own instrumentation, e.g. redisotel for go-redis), calls
// rejected before anything was sent (bad arguments), and locks that end
// because their Client was closed (no event is emitted for them).
//
// To keep only metrics or only spans, pass a no-op provider
// (go.opentelemetry.io/otel/trace/noop, go.opentelemetry.io/otel/metric/noop).
package relockotel

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/relock-go/relock"
)

// ScopeName is the instrumentation scope of the meter and tracer.
const ScopeName = "github.com/relock-go/relock/otel"

// Attribute keys.
const (
	KeyAttr        = attribute.Key("relock.key")
	OutcomeAttr    = attribute.Key("relock.outcome")
	HandedOverAttr = attribute.Key("relock.handed_over")
	ReasonAttr     = attribute.Key("relock.reason")
	EndAttr        = attribute.Key("relock.end")
	TriesAttr      = attribute.Key("relock.tries")
	FenceAttr      = attribute.Key("relock.fence")
	TTLAttr        = attribute.Key("relock.ttl_ms")
)

// An Option configures NewObserver.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	mp  metric.MeterProvider
	tp  trace.TracerProvider
	key bool
}

// WithMeterProvider sets where the metrics go; the default is the global
// provider (otel.GetMeterProvider) at the time NewObserver is called.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.mp = mp })
}

// WithTracerProvider sets where the spans go; the default is the global
// provider (otel.GetTracerProvider) at the time NewObserver is called.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tp = tp })
}

// WithKeyAttribute adds the lock's key as attribute relock.key to every
// metric and span when on. It is off by default: each distinct key makes
// its own time series.
func WithKeyAttribute(on bool) Option {
	return optionFunc(func(c *config) { c.key = on })
}

// Observer is a relock.Observer that records metrics and spans. It is
// safe for concurrent use. Make one with NewObserver.
type Observer struct {
	tracer trace.Tracer
	key    bool
	// Measurement options made once, for the attribute sets that do not
	// hold the key: none, or one of the fixed values.
	noAttrs metric.MeasurementOption
	fixed   map[attribute.KeyValue]metric.MeasurementOption

	obtainDuration metric.Float64Histogram
	holdDuration   metric.Float64Histogram
	obtained       metric.Int64Counter
	notObtained    metric.Int64Counter
	contended      metric.Int64Counter
	released       metric.Int64Counter
	refreshed      metric.Int64Counter
	refreshFailed  metric.Int64Counter
	lost           metric.Int64Counter
}

var _ relock.Observer = (*Observer)(nil)

// Histogram bucket boundaries, in seconds: obtain from half a millisecond
// (an uncontended lock on a near server) to a minute of waiting; hold from
// a millisecond to an hour.
var (
	obtainBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	holdBuckets   = []float64{0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600}
)

// NewObserver returns an Observer that records on the providers the
// options give (the global ones by default). It fails only if the meter
// refuses to create an instrument.
func NewObserver(opts ...Option) (*Observer, error) {
	cfg := config{}
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	if cfg.mp == nil {
		cfg.mp = otel.GetMeterProvider()
	}
	if cfg.tp == nil {
		cfg.tp = otel.GetTracerProvider()
	}
	meter := cfg.mp.Meter(ScopeName)
	o := &Observer{tracer: cfg.tp.Tracer(ScopeName), key: cfg.key}
	var errs []error
	hist := func(name, desc string, buckets []float64) metric.Float64Histogram {
		h, err := meter.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc), metric.WithExplicitBucketBoundaries(buckets...))
		errs = append(errs, err)
		return h
	}
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := meter.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	o.obtainDuration = hist("relock.obtain.duration", "How long Obtain ran, waiting for a taken lock included.", obtainBuckets)
	o.holdDuration = hist("relock.hold.duration", "How long a lock was held, until its release or loss.", holdBuckets)
	o.obtained = counter("relock.obtained", "{lock}", "Locks obtained.")
	o.notObtained = counter("relock.not_obtained", "{call}", "Obtain calls that failed.")
	o.contended = counter("relock.contended", "{call}", "Obtain calls that found the lock taken.")
	o.released = counter("relock.released", "{lock}", "Locks released.")
	o.refreshed = counter("relock.refreshed", "{refresh}", "Successful refreshes.")
	o.refreshFailed = counter("relock.refresh_failed", "{refresh}", "Refreshes that failed without telling whether the lock is still held.")
	o.lost = counter("relock.lost", "{lock}", "Locks that ended before Release.")
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("relockotel: %w", err)
	}
	o.noAttrs = metric.WithAttributeSet(*attribute.EmptySet())
	o.fixed = map[attribute.KeyValue]metric.MeasurementOption{}
	for _, kv := range []attribute.KeyValue{
		HandedOverAttr.Bool(false), HandedOverAttr.Bool(true),
		OutcomeAttr.String("obtained"), OutcomeAttr.String("not_obtained"),
		ReasonAttr.String("taken"), ReasonAttr.String("context"), ReasonAttr.String("error"),
		ReasonAttr.String("not_held"), ReasonAttr.String("expired"), ReasonAttr.String("other"),
		EndAttr.String("released"), EndAttr.String("lost"),
	} {
		o.fixed[kv] = metric.WithAttributeSet(attribute.NewSet(kv))
	}
	return o, nil
}

// measure returns the measurement option for the attribute kv (or none),
// plus the key when the observer records it: made once when it can be.
func (o *Observer) measure(e *relock.Event, kv ...attribute.KeyValue) metric.MeasurementOption {
	if !o.key {
		if len(kv) == 0 {
			return o.noAttrs
		}
		if opt, ok := o.fixed[kv[0]]; ok && len(kv) == 1 {
			return opt
		}
	}
	return metric.WithAttributes(o.attrs(e, kv...)...)
}

// internal is the span kind of every span.
var internal = trace.WithSpanKind(trace.SpanKindInternal)

// NotObtainedReason classifies the error of a failed Obtain as the
// relock.reason attribute does: "unavailable" when no try found the lock
// held because Redis did not answer or refused (relock.ErrUnavailable,
// whatever ended the call), "no_permission" for relock.ErrNoPermission,
// "context" when the caller's context ended the wait for a held lock,
// "taken" when the lock stayed taken until the retry strategy or the wait
// budget ran out, "error" otherwise.
func NotObtainedReason(err error) string {
	switch {
	case errors.Is(err, relock.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, relock.ErrNoPermission):
		return "no_permission"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "context"
	case errors.Is(err, relock.ErrNotObtained):
		return "taken"
	default:
		return "error"
	}
}

// LostReason classifies the Err of an EventLost as the relock.reason
// attribute does: "not_held" when a refresh (or TTL, Release) found the
// key gone or another owner's, "expired" when the validity ran out with no
// successful refresh, "other" otherwise.
func LostReason(err error) string {
	switch {
	case errors.Is(err, relock.ErrNotHeld):
		return "not_held"
	case errors.Is(err, relock.ErrLost):
		return "expired"
	default:
		return "other"
	}
}

// attrs returns kvs, with the key first when the observer records it.
func (o *Observer) attrs(e *relock.Event, kvs ...attribute.KeyValue) []attribute.KeyValue {
	if o.key {
		return append([]attribute.KeyValue{KeyAttr.String(e.Key)}, kvs...)
	}
	return kvs
}

// Observe records e. It ignores kinds it does not know.
func (o *Observer) Observe(e relock.Event) {
	ctx := context.Background()
	switch e.Kind {
	case relock.EventObtained, relock.EventNotObtained:
		o.observeObtain(ctx, &e)
	case relock.EventReleased:
		o.released.Add(ctx, 1, o.measure(&e))
		o.observeEnd(ctx, &e, "released")
		o.instant(ctx, "relock.Release", &e)
	case relock.EventLost:
		reason := LostReason(e.Err)
		o.lost.Add(ctx, 1, o.measure(&e, ReasonAttr.String(reason)))
		o.observeEnd(ctx, &e, "lost", ReasonAttr.String(reason))
	case relock.EventRefreshed:
		o.refreshed.Add(ctx, 1, o.measure(&e))
		o.instant(ctx, "relock.Refresh", &e, TTLAttr.Int64(e.TTL.Milliseconds()))
	case relock.EventRefreshFailed:
		o.refreshFailed.Add(ctx, 1, o.measure(&e))
		o.instant(ctx, "relock.Refresh", &e, TTLAttr.Int64(e.TTL.Milliseconds()))
	}
}

func (o *Observer) observeObtain(ctx context.Context, e *relock.Event) {
	var reason string
	outcome := "obtained"
	if e.Kind == relock.EventObtained {
		o.obtained.Add(ctx, 1, o.measure(e, HandedOverAttr.Bool(e.HandedOver)))
	} else {
		outcome, reason = "not_obtained", NotObtainedReason(e.Err)
		o.notObtained.Add(ctx, 1, o.measure(e, ReasonAttr.String(reason)))
	}
	o.obtainDuration.Record(ctx, e.Wait.Seconds(), o.measure(e, OutcomeAttr.String(outcome)))
	if e.Tries > 1 && reason != "unavailable" || e.HandedOver || reason == "taken" {
		o.contended.Add(ctx, 1, o.measure(e))
	}

	kvs := o.attrs(e, OutcomeAttr.String(outcome), TriesAttr.Int(e.Tries), HandedOverAttr.Bool(e.HandedOver), TTLAttr.Int64(e.TTL.Milliseconds()))
	if e.Fence != 0 {
		kvs = append(kvs, FenceAttr.Int64(e.Fence))
	}
	if reason != "" {
		kvs = append(kvs, ReasonAttr.String(reason))
	}
	_, span := o.tracer.Start(ctx, "relock.Obtain", trace.WithTimestamp(e.Time.Add(-e.Wait)), internal, trace.WithAttributes(kvs...))
	o.endSpan(span, e)
}

// observeEnd records the end of a lock's hold: the histogram and the
// relock.Hold span.
func (o *Observer) observeEnd(ctx context.Context, e *relock.Event, end string, extra ...attribute.KeyValue) {
	o.holdDuration.Record(ctx, e.Held.Seconds(), o.measure(e, EndAttr.String(end)))
	kvs := o.attrs(e, append([]attribute.KeyValue{EndAttr.String(end)}, extra...)...)
	if e.Fence != 0 {
		kvs = append(kvs, FenceAttr.Int64(e.Fence))
	}
	_, span := o.tracer.Start(ctx, "relock.Hold", trace.WithTimestamp(e.Time.Add(-e.Held)), internal, trace.WithAttributes(kvs...))
	o.endSpan(span, e)
}

// instant records a span of no duration at e.Time.
func (o *Observer) instant(ctx context.Context, name string, e *relock.Event, extra ...attribute.KeyValue) {
	kvs := o.attrs(e, extra...)
	if e.Fence != 0 {
		kvs = append(kvs, FenceAttr.Int64(e.Fence))
	}
	_, span := o.tracer.Start(ctx, name, trace.WithTimestamp(e.Time), internal, trace.WithAttributes(kvs...))
	o.endSpan(span, e)
}

// endSpan ends span at e.Time, with e.Err recorded as its error.
func (o *Observer) endSpan(span trace.Span, e *relock.Event) {
	if e.Err != nil {
		span.RecordError(e.Err, trace.WithTimestamp(e.Time))
		span.SetStatus(codes.Error, e.Err.Error())
	}
	span.End(trace.WithTimestamp(e.Time))
}
