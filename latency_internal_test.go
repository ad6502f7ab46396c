package relock

import (
	"context"
	"strconv"
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

// tryUntil sends one obtain try, as try does, asking for a place that ends
// at placeEnd (server ms; 0 for none).
func tryUntil(t *testing.T, p scriptPath, rc *rawConn, key, token string, mode queueMode, placeEnd int64) obtainReply {
	t.Helper()
	q := &obtainReq{key: key, keys: keysFor(key), token: token, value: token, mode: mode, ttl: 5 * time.Second, placeEnd: placeEnd}
	if _, err := p.obtain(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	rep, err := parseObtainReply(rc.lastReply())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// serverMillis is the server's clock, in ms since the epoch.
func serverMillis(t *testing.T, s *rawServer) int64 {
	t.Helper()
	v, err := s.rdb.Do(context.Background(), "TIME").Result()
	a, _ := v.([]any)
	if err != nil || len(a) != 2 {
		t.Fatalf("TIME = %v, %v", v, err)
	}
	sec, _ := strconv.ParseInt(a[0].(string), 10, 64)
	usec, _ := strconv.ParseInt(a[1].(string), 10, 64)
	return sec*1000 + usec/1000
}

// Issue 19.2: renewals run in the background while a waiter listens for a
// hand-over, so one may reach Redis after a hand-over consumed the
// waiter's place and the waiter released the lock. Such a renewal, or one
// whose place lapsed, never takes a free lock: it reports the lapse and
// writes nothing. A join still takes a free lock, and a renewal whose
// place is live still takes it when nobody live queues ahead.
func TestRenewalTakesNoFreeLockWithoutItsPlace(t *testing.T) {
	eachRawServer(t, func(t *testing.T, s *rawServer) {
		p, rc := s.path()
		key := s.key(t, "renew")
		k := keysFor(key)
		a, w, x := testToken(), testToken(), testToken()
		try(t, p, rc, key, a, noQueue, false, "")
		if rep := tryUntil(t, p, rc, key, w, joinQueue, 0); rep.status != obtainQueued {
			t.Fatalf("w joins: %+v", rep)
		}
		if ok, err := p.release(context.Background(), k, a, false); err != nil || !ok {
			t.Fatalf("a's release = %v, %v", ok, err)
		}
		if rep := tryUntil(t, p, rc, key, w, renewQueue, 0); rep.status != obtainOurs {
			t.Fatalf("w's renewal after the hand-over: %+v, want ours (it confirms the claim)", rep)
		}
		if ok, err := p.release(context.Background(), k, w, false); err != nil || !ok {
			t.Fatalf("w's release = %v, %v", ok, err)
		}
		// A renewal of w's, late: the lock is free and w has no place.
		if rep := tryUntil(t, p, rc, key, w, renewQueue, 0); rep.status != obtainLapsed {
			t.Fatalf("w's late renewal: %+v, want lapsed", rep)
		}
		if v, ok := s.get(t, key); ok {
			t.Fatalf("a late renewal took the free lock: it holds %q", v)
		}
		if _, ok := s.get(t, k.waiter+w); ok {
			t.Fatal("a late renewal wrote w's place")
		}

		// x joins while the lock is taken; its place lapses (deleted here);
		// the lock is released to nobody.
		try(t, p, rc, key, a, noQueue, false, "")
		if rep := tryUntil(t, p, rc, key, x, joinQueue, 0); rep.status != obtainQueued {
			t.Fatalf("x joins: %+v", rep)
		}
		s.rdb.Del(context.Background(), k.waiter+x)
		if ok, err := p.release(context.Background(), k, a, false); err != nil || !ok {
			t.Fatalf("a's release = %v, %v", ok, err)
		}
		if rep := tryUntil(t, p, rc, key, x, renewQueue, 0); rep.status != obtainLapsed {
			t.Fatalf("x's renewal of a lapsed place on a free lock: %+v, want lapsed", rep)
		}
		if rep := tryUntil(t, p, rc, key, x, joinQueue, 0); rep.status != obtainOurs {
			t.Fatalf("x joins again on a free lock: %+v, want ours", rep)
		}
		if ok, err := p.release(context.Background(), k, x, false); err != nil || !ok {
			t.Fatalf("x's release = %v, %v", ok, err)
		}

		// A live place at the head of the queue takes a free lock.
		try(t, p, rc, key, a, noQueue, false, "")
		if rep := tryUntil(t, p, rc, key, w, joinQueue, 0); rep.status != obtainQueued {
			t.Fatalf("w joins again: %+v", rep)
		}
		s.rdb.Del(context.Background(), key) // a's key expires
		if rep := tryUntil(t, p, rc, key, w, renewQueue, 0); rep.status != obtainOurs {
			t.Fatalf("w's renewal, at the head, of a lock that expired: %+v, want ours", rep)
		}
	})
}

// Issue 19.2: a waiter asks for no place that outlives the moment a
// hand-over could still reach it and be confirmed before its call ends
// (ARGV[9], in the server's clock). Its place ends then at the latest;
// past it, a join or renewal is a plain try, which still honours a
// tombstone.
func TestPlaceEndBoundsThePlace(t *testing.T) {
	eachRawServer(t, func(t *testing.T, s *rawServer) {
		p, rc := s.path()
		key := s.key(t, "end")
		k := keysFor(key)
		a, w, gone := testToken(), testToken(), testToken()
		try(t, p, rc, key, a, noQueue, false, "")
		if rep := tryUntil(t, p, rc, key, w, joinQueue, serverMillis(t, s)+300); rep.status != obtainQueued {
			t.Fatalf("w joins: %+v", rep)
		}
		if d := s.rdb.PTTL(context.Background(), k.waiter+w).Val(); d <= 0 || d > 300*time.Millisecond {
			t.Fatalf("w's place lives %v, want at most 300ms", d)
		}
		if rep := tryUntil(t, p, rc, key, w, renewQueue, serverMillis(t, s)+100); rep.status != obtainQueued {
			t.Fatalf("w renews: %+v", rep)
		}
		if d := s.rdb.PTTL(context.Background(), k.waiter+w).Val(); d <= 0 || d > 100*time.Millisecond {
			t.Fatalf("w's renewed place lives %v, want at most 100ms", d)
		}
		if rep := tryUntil(t, p, rc, key, w, renewQueue, serverMillis(t, s)-1); rep.status != obtainTaken {
			t.Fatalf("w renews past the end of its place: %+v, want taken, not queued", rep)
		}
		if d := s.rdb.PTTL(context.Background(), k.waiter+w).Val(); d > 100*time.Millisecond {
			t.Fatalf("a renewal past the end renewed the place: %v", d)
		}
		s.rdb.Del(context.Background(), k.waiter+w)
		if ok, err := p.release(context.Background(), k, a, false); err != nil || !ok {
			t.Fatalf("a's release = %v, %v", ok, err)
		}
		// gone joined and left; its late try, past the end, takes nothing.
		if rep := tryUntil(t, p, rc, key, gone, joinQueue, 0); rep.status != obtainOurs {
			t.Fatalf("gone joins a free lock: %+v", rep)
		}
		if _, err := p.release(context.Background(), k, gone, true); err != nil {
			t.Fatal(err)
		}
		if rep := tryUntil(t, p, rc, key, gone, renewQueue, 1); rep.status != obtainLeft {
			t.Fatalf("a late try of a waiter that left, past the end: %+v, want left", rep)
		}
		if rep := tryUntil(t, p, rc, key, w, joinQueue, 1); rep.status != obtainOurs {
			t.Fatalf("w's join past the end, on a free lock: %+v, want ours (a plain try)", rep)
		}
		if _, ok := s.get(t, k.waiter+w); ok {
			t.Fatal("a try past the end left w a place")
		}
	})
}
