package relock

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// An Observer is told what happens to locks: obtained, not obtained,
// released, refreshed, refresh failed, lost. Give one to New with
// WithObserver; package relockotel turns events into OpenTelemetry metrics
// and spans, and SlogObserver into log records.
//
// Observe is called synchronously, on the goroutine of the call that
// caused the event (for a loss found by the validity timer, the timer's),
// so it must be quick and must not call back into the lock. It must be
// safe for concurrent use. With no observer set, no Event is built: the
// hook costs one nil check per call.
type Observer interface {
	Observe(Event)
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
)

var eventNames = [...]string{"", "obtained", "not_obtained", "released", "refreshed", "refresh_failed", "lost"}

// String returns the kind's name, as used in logs and metrics:
// "obtained", "not_obtained", "released", "refreshed", "refresh_failed",
// "lost".
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
	// held, counted from ObtainedAt.
	Held time.Duration
	// TTL is the lock's TTL (for EventRefreshed, the new one).
	TTL time.Duration
	// Err is why, for EventNotObtained, EventRefreshFailed and EventLost.
	Err error
}

// WithObserver sets the observer told about the Client's locks. Give it to
// New (or NewQuorum, Open); given to Obtain, it applies to that lock.
func WithObserver(o Observer) Option {
	return optionFunc(func(st *settings) { st.observer = o })
}

// SlogObserver returns an Observer that logs every event to logger:
// obtained, released and refreshed at Debug, not obtained at Info (at Warn
// when Redis was unavailable or refused permission: ErrUnavailable,
// ErrNoPermission), a failed refresh and a loss at Warn. Each record carries the event's key and the
// fields that apply (wait, tries, handed_over, fence, held, ttl, err).
func SlogObserver(logger *slog.Logger) Observer {
	return slogObserver{logger}
}

type slogObserver struct{ l *slog.Logger }

func (o slogObserver) Observe(e Event) {
	level := slog.LevelDebug
	switch e.Kind {
	case EventNotObtained:
		level = slog.LevelInfo
		if errors.Is(e.Err, ErrUnavailable) || errors.Is(e.Err, ErrNoPermission) {
			level = slog.LevelWarn
		}
	case EventRefreshFailed, EventLost:
		level = slog.LevelWarn
	}
	ctx := context.Background()
	if !o.l.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs, slog.String("key", e.Key))
	switch e.Kind {
	case EventObtained, EventNotObtained:
		attrs = append(attrs, slog.Duration("wait", e.Wait), slog.Int("tries", e.Tries))
		if e.HandedOver {
			attrs = append(attrs, slog.Bool("handed_over", true))
		}
	case EventReleased, EventLost:
		attrs = append(attrs, slog.Duration("held", e.Held))
	case EventRefreshed:
		attrs = append(attrs, slog.Duration("ttl", e.TTL))
	}
	if e.Fence != 0 {
		attrs = append(attrs, slog.Int64("fence", e.Fence))
	}
	if e.Err != nil {
		attrs = append(attrs, slog.String("err", e.Err.Error()))
	}
	o.l.LogAttrs(ctx, level, "relock: "+e.Kind.String(), attrs...)
}
