package relock

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"time"
)

// An Observer is told what happens to locks: obtained, not obtained,
// released, refreshed, refresh failed, lost. Give one to New with
// WithObserver; package relockotel turns events into OpenTelemetry metrics
// and spans, and SlogObserver into log records.
//
// Observe is called synchronously, on the goroutine of the call that
// caused the event (for a loss found by the validity timer, the timer's;
// for an auto-refresh, the refresher's), so it must be quick and must not
// call back into the lock. It must be safe for concurrent use. With no
// observer set, no Event is built: the hook costs one nil check per call.
//
// An Observer that also implements ContextObserver gets the contexts of
// the calls and of each lock, and is told when a refresh or a release
// begins and ends.
type Observer interface {
	Observe(Event)
}

// A ContextObserver is an Observer that follows calls and locks through
// contexts, as tracing and trace-correlated logging do. relock finds it by
// type assertion on the Observer given to WithObserver, as database/sql
// finds a driver's optional interfaces, and then calls ObserveContext
// instead of Observe, for every event.
//
// ctx is the context the event belongs to:
//
//   - EventObtained, EventNotObtained: the context given to Obtain (or Do).
//     For EventObtained, the context returned becomes the lock's context.
//   - EventRefreshing, EventReleasing (given only to a ContextObserver):
//     the lock's context. A refresh or release is about to be sent to
//     Redis; the context returned becomes the call's context.
//   - The events that happen during such a call (EventRefreshed,
//     EventRefreshFailed, EventReleased, EventLost), and EventDone, which
//     ends it: the call's context.
//   - Any other event of a lock (a loss noticed by the validity timer or
//     by Done or Err, a release by Client.Close or in the background): the
//     lock's context.
//
// Every EventRefreshing and EventReleasing is followed by exactly one
// EventDone with the context returned for it, on the same goroutine, once
// the call to Redis has returned: that is where a span measuring the call
// ends. A lock made by Attach, which emits no EventObtained, has
// context.Background as its context.
//
// The context returned must be ctx or derived from it (as
// trace.ContextWithSpan or context.WithValue make); nil means ctx. relock
// uses a lock's context only for its values: to give it to the observer,
// and as the parent of the context Do passes to its function, so that the
// function's work nests under what the observer put there. It never uses
// it to bound a call to Redis: the caller's context does that. The return
// value is ignored for the other kinds.
type ContextObserver interface {
	Observer
	ObserveContext(ctx context.Context, e Event) context.Context
}

// ObserverFunc adapts a function to an Observer.
type ObserverFunc func(Event)

// Observe calls f(e).
func (f ObserverFunc) Observe(e Event) { f(e) }

// EventKind says what an Event reports.
type EventKind uint8

// The kinds of events.
const (
	// EventObtained: Obtain returned a lock. Wait, Tries, HandedOver and
	// Fence say how.
	EventObtained EventKind = iota + 1
	// EventNotObtained: Obtain failed. Err says why: ErrNotObtained (a
	// try found the lock held; with the context's error when the context
	// ended the wait), ErrUnavailable (no try found it held: Redis did not
	// answer or refused; with the context's error, if any, and the last
	// try's), ErrNoPermission, ErrWrongType, or another Redis error. Wait
	// and Tries say how long it tried.
	EventNotObtained
	// EventReleased: Release deleted the key or handed it on (also
	// Client.Close, for the auto-refreshed locks it gives back). Held is
	// how long the lock was held.
	EventReleased
	// EventRefreshed: a refresh (Refresh or auto-refresh) extended the lock.
	EventRefreshed
	// EventRefreshFailed: a refresh failed without telling whether the
	// lock is still ours (Redis error, timeout); Err says why. The lock
	// stays valid until its validity runs out.
	EventRefreshFailed
	// EventLost: the lock ended before Release: a refresh found it gone or
	// another owner's, its validity ran out, or Client.Close stopped its
	// auto-refresh and could not give it back (Err is then ErrClosed).
	// Err is the lock's Err.
	EventLost
	// EventRefreshing (given only to a ContextObserver): a refresh, by
	// Refresh or auto-refresh, is about to be sent; TTL is what it asks
	// for. EventDone follows when it returns.
	EventRefreshing
	// EventReleasing (given only to a ContextObserver): a release, by
	// Release, Do or Client.Close, is about to be sent. EventDone follows
	// when it returns.
	EventReleasing
	// EventDone (given only to a ContextObserver): the refresh or release
	// that the last EventRefreshing or EventReleasing of its context began
	// has returned. Err is its error, nil when it succeeded.
	EventDone
)

// numKinds is one more than the last kind.
const numKinds = EventDone + 1

var eventNames = [...]string{"", "obtained", "not_obtained", "released", "refreshed", "refresh_failed", "lost", "refreshing", "releasing", "done"}

// String returns the kind's name, as used in logs and metrics:
// "obtained", "not_obtained", "released", "refreshed", "refresh_failed",
// "lost", "refreshing", "releasing", "done".
func (k EventKind) String() string {
	if int(k) < len(eventNames) && k > 0 {
		return eventNames[k]
	}
	return "unknown"
}

// An Event is one thing that happened to a lock.
type Event struct {
	Kind EventKind
	// Key is the lock's Redis key (Lock.RedisKey): the name given to
	// Obtain, after the Client's WithKeyPrefix.
	Key string
	// Time is when the event happened.
	Time time.Time
	// Wait is, for EventObtained and EventNotObtained, how long Obtain ran.
	Wait time.Duration
	// Tries is, for EventObtained and EventNotObtained, how many tries
	// Obtain sent.
	Tries int
	// HandedOver is true for a lock that a release handed to this waiter.
	HandedOver bool
	// Fence is the lock's fencing number, when it has one.
	Fence int64
	// Held is, for EventReleased and EventLost, how long the lock was
	// held, counted from ObtainedAt; for EventObtained, how long it has
	// been held already (Time less ObtainedAt).
	Held time.Duration
	// TTL is the lock's TTL (for EventRefreshed, the new one).
	TTL time.Duration
	// Err is why, for EventNotObtained, EventRefreshFailed and EventLost;
	// for EventDone, the call's error.
	Err error
}

// WithObserver sets the observer told about the Client's locks. Give it to
// New (or NewQuorum, Open); given to Obtain, it applies to that lock.
func WithObserver(o Observer) Option {
	return optionFunc(func(st *settings) { st.observer = o })
}

// SlogObserver returns an Observer that logs events to logger. By default
// obtained, released and refreshed are logged at Debug, not obtained at
// Info (at Warn when Redis was unavailable or refused permission:
// ErrUnavailable, ErrNoPermission), a failed refresh and a loss at Warn;
// EventRefreshing, EventReleasing and EventDone are not logged. SlogLevel
// changes the level of a kind, or turns it off.
//
// Each record carries the event's key and the fields that apply (wait,
// tries, handed_over, fence, held, ttl, err); durations are strings as
// time.Duration prints them ("1.5ms"), which time.ParseDuration reads
// back. The observer is a ContextObserver: each record is logged with the
// event's context (the Obtain caller's, for the events of a lock), so a
// handler that adds trace ids finds them.
func SlogObserver(logger *slog.Logger, opts ...SlogOption) Observer {
	o := &slogObserver{l: logger}
	for k := EventKind(1); k < numKinds; k++ {
		o.levels[k] = slogDefault
	}
	o.levels[EventObtained], o.levels[EventReleased], o.levels[EventRefreshed] = slog.LevelDebug, slog.LevelDebug, slog.LevelDebug
	o.levels[EventRefreshFailed], o.levels[EventLost] = slog.LevelWarn, slog.LevelWarn
	o.levels[EventRefreshing], o.levels[EventReleasing], o.levels[EventDone] = SlogOff, SlogOff, SlogOff
	for _, opt := range opts {
		if opt != nil {
			opt(o)
		}
	}
	return o
}

// A SlogOption configures SlogObserver.
type SlogOption func(*slogObserver)

// SlogOff, given to SlogLevel, turns the logging of a kind off.
const SlogOff = slog.Level(math.MaxInt32)

// slogDefault is EventNotObtained's default: Info, or Warn when Redis was
// unavailable or refused permission.
const slogDefault = slog.Level(math.MinInt32)

// SlogLevel logs the events of kind at level (SlogOff: not at all).
func SlogLevel(kind EventKind, level slog.Level) SlogOption {
	return func(o *slogObserver) {
		if kind > 0 && kind < numKinds {
			o.levels[kind] = level
		}
	}
}

type slogObserver struct {
	l      *slog.Logger
	levels [numKinds]slog.Level
}

func (o *slogObserver) Observe(e Event) { o.ObserveContext(context.Background(), e) }

func (o *slogObserver) ObserveContext(ctx context.Context, e Event) context.Context {
	if e.Kind == 0 || e.Kind >= numKinds {
		return ctx
	}
	level := o.levels[e.Kind]
	if level == slogDefault {
		level = slog.LevelInfo
		if errors.Is(e.Err, ErrUnavailable) || errors.Is(e.Err, ErrNoPermission) {
			level = slog.LevelWarn
		}
	}
	if level == SlogOff || !o.l.Enabled(ctx, level) {
		return ctx
	}
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs, slog.String("key", e.Key))
	switch e.Kind {
	case EventObtained, EventNotObtained:
		attrs = append(attrs, slog.String("wait", e.Wait.String()), slog.Int("tries", e.Tries))
		if e.HandedOver {
			attrs = append(attrs, slog.Bool("handed_over", true))
		}
	case EventReleased, EventLost:
		attrs = append(attrs, slog.String("held", e.Held.String()))
	case EventRefreshed, EventRefreshing:
		attrs = append(attrs, slog.String("ttl", e.TTL.String()))
	}
	if e.Fence != 0 {
		attrs = append(attrs, slog.Int64("fence", e.Fence))
	}
	if e.Err != nil {
		attrs = append(attrs, slog.String("err", e.Err.Error()))
	}
	o.l.LogAttrs(ctx, level, "relock: "+e.Kind.String(), attrs...)
	return ctx
}
