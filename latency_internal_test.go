package relock

import (
	"testing"
	"time"
)

// Auto-refresh is due a third of the TTL after the last write was sent,
// and within a third of the validity left: a lock that arrived with little
// validity (a hand-over that crossed a slow link) is refreshed at once.
func TestNextRefresh(t *testing.T) {
	const ttl = 3 * time.Second
	valid := ttl - drift(ttl)
	for _, c := range []struct {
		name     string
		left     time.Duration // validity left
		min, max time.Duration
	}{
		{"fresh", valid, valid/3 - 20*time.Millisecond, valid / 3},
		{"written 480 ms ago", valid - 480*time.Millisecond, valid/3 - 500*time.Millisecond, valid/3 - 480*time.Millisecond},
		{"arrived with 300 ms", 300 * time.Millisecond, 0, 0},
		{"past", -time.Second, 0, 0},
	} {
		l := &Lock{ttl: ttl, validUntil: time.Now().Add(c.left)}
		if got := l.nextRefresh(); got < c.min || got > c.max {
			t.Errorf("%s: next refresh in %v, want %v to %v", c.name, got, c.min, c.max)
		}
	}
}

// Release lets a refresh on the wire finish for two of the lock's round
// trips, within bounds.
func TestRefreshGrace(t *testing.T) {
	for _, c := range []struct{ rtt, want time.Duration }{
		{0, time.Millisecond},
		{100 * time.Microsecond, 1200 * time.Microsecond},
		{150 * time.Millisecond, 301 * time.Millisecond},
		{10 * time.Second, time.Second},
	} {
		if got := refreshGrace(c.rtt); got != c.want {
			t.Errorf("refreshGrace(%v) = %v, want %v", c.rtt, got, c.want)
		}
	}
}
