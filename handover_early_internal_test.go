package relock

import (
	"context"
	_ "embed"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/scripts"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// hookSubConn is hookConn that also subscribes, so its Client hears
// hand-overs, each delay after it arrives.
type hookSubConn struct {
	*hookConn
	rawSubscriber
	delay time.Duration
}

func (c *hookSubConn) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	return c.rawSubscriber.Subscribe(ctx, func(channel, payload string) {
		time.Sleep(c.delay)
		onMessage(channel, payload)
	})
}

// earlySetup has a holder take key and a waiter (over conn) queue for it,
// and returns the holder's lock and a channel with the waiter's Obtain.
func earlySetup(t *testing.T, s *rawServer, key string, conn *hookSubConn, ttl time.Duration) (*Lock, <-chan obtained) {
	t.Helper()
	holder, err := New(&rawConn{rdb: s.rdb})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Close() })
	waiter, err := New(conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { waiter.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	l, err := holder.Obtain(ctx, key, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan obtained, 1)
	go func() {
		wl, err := waiter.Obtain(ctx, key, ttl)
		got <- obtained{wl, err, time.Now()}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.queue(t, keysFor(key))) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the waiter never queued")
		}
		time.Sleep(2 * time.Millisecond)
	}
	return l, got
}

type obtained struct {
	l   *Lock
	err error
	at  time.Time
}

// checkWithinExpiry fails t if l's validity ends after the key's expiry:
// the server read the PTTL after before, so the key expires no earlier
// than before+PTTL, and no later than after+PTTL+1ms; a validity past
// that believes what Redis does not hold.
func checkWithinExpiry(t *testing.T, s *rawServer, key string, l *Lock) time.Duration {
	t.Helper()
	before := time.Now()
	r, err := s.rdb.do("PTTL", key)
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	p := time.Duration(r.(int64)) * time.Millisecond
	if p < 0 {
		t.Fatalf("PTTL %v: the key is gone while the lock is valid until %v", p, l.ValidUntil())
	}
	if v := l.ValidUntil(); v.After(after.Add(p + time.Millisecond)) {
		t.Fatalf("the lock is valid %v past the key's expiry (PTTL %v)", v.Sub(after.Add(p)), p)
	}
	return l.ValidUntil().Sub(before) - p // how far before the expiry the validity ends, about
}

// Issue 19.3: a waiter relies on a hand-over at once, on the claim's
// expiry that the release announces, and its confirmation extends the
// validity to the TTL when it answers. Here the confirmation's answer is
// held back 600 ms: Obtain has returned long before, valid within the
// claim (never past the key's expiry), and the validity grows to the TTL
// once it answers. The announcement reaches the waiter 100 ms late, so a
// validity counted from its arrival, not from the claim's expiry, would
// run past what Redis holds.
func TestEarlyHandOver(t *testing.T) {
	addr := testredis.Addr(t)
	rdb := &rawRedis{addr: addr}
	s := &rawServer{addr: addr, rdb: rdb}
	key := s.key(t, "{early}")
	var holding atomic.Bool
	release := make(chan struct{})
	hc := &hookConn{rawConn: &rawConn{rdb: rdb}}
	hc.after = func(ctx context.Context, sha string) error {
		if sha == scripts.Refresh.SHA1 && holding.Load() {
			<-release
		}
		return nil
	}
	conn := &hookSubConn{hookConn: hc, rawSubscriber: rawSubscriber{addr}, delay: 100 * time.Millisecond}
	l, got := earlySetup(t, s, key, conn, 5*time.Second)
	holding.Store(true)
	released := time.Now()
	if err := l.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	var r obtained
	select {
	case r = <-got:
	case <-time.After(2 * time.Second):
		close(release)
		t.Fatal("no lock 2s after the release: the waiter waited for its confirmation")
	}
	if r.err != nil {
		close(release)
		t.Fatal(r.err)
	}
	wl := r.l
	t.Logf("lock given %v after the release, valid for %v", r.at.Sub(released), time.Until(wl.ValidUntil()))
	if wl.confirming == nil {
		close(release)
		t.Fatal("the lock was confirmed before it was given")
	}
	if left := time.Until(wl.ValidUntil()); left > handoverClaim-conn.delay || left <= 0 {
		close(release)
		t.Fatalf("valid for %v before the confirmation answered; want within the claim (%v)", left, handoverClaim)
	}
	margin := checkWithinExpiry(t, s, key, wl)
	t.Logf("validity ends about %v before the claim expires", -margin)
	// TTL waits for the confirmation (it reads the TTL asked for, not the
	// claim), and a Refresh too (one write at a time).
	type ttlRead struct {
		d   time.Duration
		err error
	}
	ttl := make(chan ttlRead, 1)
	go func() {
		d, err := wl.TTL(context.Background())
		ttl <- ttlRead{d, err}
	}()
	refreshed := make(chan error, 1)
	go func() {
		time.Sleep(10 * time.Millisecond) // after the TTL read
		refreshed <- wl.Refresh(context.Background(), 3*time.Second)
	}()
	select {
	case err := <-refreshed:
		t.Fatalf("Refresh returned (%v) while the confirmation was on the wire", err)
	case r := <-ttl:
		t.Fatalf("TTL returned (%v, %v) while the confirmation was on the wire", r.d, r.err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if r := <-ttl; r.err != nil || r.d < 2*time.Second {
		t.Fatalf("TTL after the confirmation: %v, %v; want about the 5s asked for (or the 3s of the Refresh after it)", r.d, r.err)
	}
	if err := <-refreshed; err != nil {
		t.Fatal(err)
	}
	<-wl.confirming
	// The Refresh ran after the confirmation: the validity follows it.
	if left := time.Until(wl.ValidUntil()); left < 2*time.Second || left > 3*time.Second {
		t.Fatalf("valid for %v after a 3s Refresh that followed the confirmation", left)
	}
	checkWithinExpiry(t, s, key, wl)
	if err := wl.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// The confirmation gets no answer before the claim runs out: the lock ends
// at its validity, the claim's, while Redis still holds the key for us;
// nothing believes the lock past it.
func TestEarlyHandOverUnconfirmedEnds(t *testing.T) {
	addr := testredis.Addr(t)
	rdb := &rawRedis{addr: addr}
	s := &rawServer{addr: addr, rdb: rdb}
	key := s.key(t, "{unconfirmed}")
	var holding atomic.Bool
	hc := &hookConn{rawConn: &rawConn{rdb: rdb}}
	hc.before = func(ctx context.Context, sha string) error {
		if sha == scripts.Refresh.SHA1 && holding.Load() {
			<-ctx.Done() // never sent: its context ends with the claim
			return ctx.Err()
		}
		return nil
	}
	conn := &hookSubConn{hookConn: hc, rawSubscriber: rawSubscriber{addr}}
	l, got := earlySetup(t, s, key, conn, 5*time.Second)
	holding.Store(true)
	if err := l.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	wl := r.l
	checkWithinExpiry(t, s, key, wl)
	select {
	case <-wl.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("the lock was still valid 2s after a hand-over whose claim was never confirmed")
	}
	if err := wl.Err(); !errors.Is(err, ErrLost) {
		t.Fatalf("Err() = %v, want ErrLost", err)
	}
	if err := wl.Release(context.Background()); err == nil {
		t.Fatal("Release of a lock past its validity reported success")
	}
}

//go:embed testdata/release_v19_2.lua
var releaseBeforeEarly string

// A release of an earlier version announces the time of the hand-over,
// not the claim's expiry: the waiter reads it as an expiry already past
// and confirms the claim before it gives the lock, as before; the lock is
// then valid for its TTL.
func TestHandOverFromAnEarlierRelease(t *testing.T) {
	addr := testredis.Addr(t)
	rdb := &rawRedis{addr: addr}
	s := &rawServer{addr: addr, rdb: rdb}
	key := s.key(t, "{oldrelease}")
	conn := &hookSubConn{hookConn: &hookConn{rawConn: &rawConn{rdb: rdb}}, rawSubscriber: rawSubscriber{addr}}
	l, got := earlySetup(t, s, key, conn, 5*time.Second)
	k := keysFor(key)
	n, err := rdb.do("EVAL", releaseBeforeEarly, "3", k.lock, k.queue, k.fence, l.req.token)
	if err != nil || n != int64(1) {
		t.Fatalf("the earlier release script: %v, %v", n, err)
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.l.Release(context.Background())
	if r.l.confirming != nil {
		t.Fatal("the lock was given before its confirmation on an announcement of an earlier release")
	}
	if left := time.Until(r.l.ValidUntil()); left < 4*time.Second {
		t.Fatalf("valid for %v, want about the TTL (5s)", left)
	}
	checkWithinExpiry(t, s, key, r.l)
}

func TestClaimHolds(t *testing.T) {
	sent := time.Now()
	const server = int64(1_700_000_000_000_000)
	for _, tc := range []struct {
		expiry int64
		ok     bool
		until  time.Duration
	}{
		{server + 250_000, true, 250*time.Millisecond - drift(250*time.Millisecond)},
		{server + 1, true, time.Microsecond - drift(time.Microsecond)},
		{server, false, 0},
		{server - 5_000, false, 0}, // an earlier release's announcement: the hand-over's time
	} {
		until, ok := claimHolds(sent, server, tc.expiry)
		if ok != tc.ok || ok && until.Sub(sent) != tc.until {
			t.Errorf("claimHolds(expiry %+d µs) = %v, %v; want %v, %v", tc.expiry-server, until.Sub(sent), ok, tc.until, tc.ok)
		}
	}
}
