package relock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/scripts"
	"github.com/relock-go/relock/internal/testkit/testredis"
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

// stallConn is rawConn with pub/sub (rawSubscriber), whose obtain script
// calls can be held back: stall says how long to hold back the reply of a
// call with these arguments, after the server ran it; cut records a call
// whose context ended meanwhile.
type stallConn struct {
	*rawConn
	rawSubscriber
	stall func(args []string) time.Duration
	cut   atomic.Int32
}

func (c *stallConn) EvalSha(ctx context.Context, sha string, keys []string, args ...string) (any, error) {
	r, err := c.rawConn.EvalSha(ctx, sha, keys, args...)
	if sha != scripts.Obtain.SHA1 {
		return r, err
	}
	if d := c.stall(args); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			c.cut.Add(1)
			return nil, ctx.Err()
		}
	}
	return r, err
}

// renewing reports whether obtain script arguments are a waiter's renewal.
func renewing(args []string) bool {
	return len(args) > 8 && args[2] == queueModeArg[renewQueue]
}

// Issue 19.2: a hand-over that arrives while the waiter's renewal is on
// the wire is taken at once: the waiter confirms it without waiting for
// the renewal's reply (held back here for 2 s). Before, the waiter sent
// its tries one at a time, and the lock sat unconfirmed until the renewal
// answered, its claim running out meanwhile.
func TestHandOverWhileARenewalIsOnTheWire(t *testing.T) {
	addr := testredis.Addr(t)
	rdb := &rawRedis{addr: addr}
	s := &rawServer{addr: addr, rdb: rdb}
	key := s.key(t, "{onwire}")
	var stalling atomic.Bool
	var stalled atomic.Int32
	conn := &stallConn{rawConn: &rawConn{rdb: rdb}, rawSubscriber: rawSubscriber{addr}, stall: func(args []string) time.Duration {
		if stalling.Load() && renewing(args) {
			stalled.Add(1)
			return 2 * time.Second
		}
		return 0
	}}
	holder, err := New(&rawConn{rdb: rdb})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	waiter, err := New(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := holder.Obtain(ctx, key, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		l   *Lock
		err error
		at  time.Time
	}
	got := make(chan result, 1)
	go func() {
		wl, err := waiter.Obtain(ctx, key, 5*time.Second)
		got <- result{wl, err, time.Now()}
	}()
	for len(s.queue(t, keysFor(key))) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	stalling.Store(true)
	for stalled.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	released := time.Now()
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.l.Release(ctx)
	took := r.at.Sub(released)
	t.Logf("the waiter had the lock %v after the release, its renewal still on the wire", took)
	if took > time.Second {
		t.Fatalf("the waiter took the hand-over %v after the release: it waited for its renewal (held back 2s)", took)
	}
	if c := r.l.confirming; c != nil {
		// Given on the claim (takeOverEarly): its confirmation, also sent
		// while the renewal is on the wire, sets the validity.
		select {
		case <-c:
		case <-time.After(time.Second):
			t.Fatal("the confirmation had not answered 1s after the hand-over: it waited for the renewal")
		}
	}
	if !r.l.ValidUntil().After(time.Now().Add(4 * time.Second)) {
		t.Fatalf("the lock is valid until %v, want about 5s from now: the claim was not confirmed", r.l.ValidUntil())
	}
}

// Issue 19.2: a try on the wire when the call's deadline comes is not cut
// by it (cutting a command costs its connection on go-redis and redigo,
// and the call's clean-up then needs a new one); Obtain still returns by
// its deadline, and leaves the queue.
func TestTryOnTheWireOutlivesTheCall(t *testing.T) {
	addr := testredis.Addr(t)
	rdb := &rawRedis{addr: addr}
	s := &rawServer{addr: addr, rdb: rdb}
	key := s.key(t, "{outlive}")
	k := keysFor(key)
	conn := &stallConn{rawConn: &rawConn{rdb: rdb}, rawSubscriber: rawSubscriber{addr}, stall: func(args []string) time.Duration {
		if renewing(args) {
			return 500 * time.Millisecond
		}
		return 0
	}}
	holder, err := New(&rawConn{rdb: rdb})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	waiter, err := New(conn)
	if err != nil {
		t.Fatal(err)
	}
	l, err := holder.Obtain(context.Background(), key, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = waiter.Obtain(ctx, key, 5*time.Second)
	took := time.Since(start)
	if !errors.Is(err, ErrNotObtained) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Obtain = %v, want ErrNotObtained and the deadline", err)
	}
	if took > 600*time.Millisecond+lastTryGrace {
		t.Fatalf("Obtain returned after %v, past its deadline", took)
	}
	time.Sleep(700 * time.Millisecond) // the renewal on the wire answers
	if n := conn.cut.Load(); n > 0 {
		t.Fatalf("%d renewals on the wire were cut when the call ended", n)
	}
	if err := waiter.Close(); err != nil {
		t.Fatal(err)
	}
	places, err := s.rdb.Keys(context.Background(), k.waiter+"*").Result()
	if err != nil || len(places) == 0 {
		t.Fatalf("waiter keys %v, %v; want the waiter's tombstone", places, err)
	}
	for _, w := range places {
		if v, _ := s.get(t, w); v != "-" {
			t.Fatalf("the waiter's place holds %q after the call, want it left (\"-\")", v)
		}
	}
}

// rawSubscriber is driver.Subscriber over one RESP2 connection per
// subscription, for client-level tests of hand-overs.
type rawSubscriber struct{ addr string }

func (s rawSubscriber) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, err
	}
	sub := &rawSubscription{c: c, done: make(chan struct{}), confirmed: make(chan struct{}, 64)}
	go sub.read(bufio.NewReader(c), onMessage)
	return sub, nil
}

type rawSubscription struct {
	c         net.Conn
	mu        sync.Mutex // orders writes
	done      chan struct{}
	confirmed chan struct{} // one per SUBSCRIBE confirmation
}

func (s *rawSubscription) read(r *bufio.Reader, onMessage func(string, string)) {
	defer close(s.done)
	for {
		v, err := readRESP(r)
		if err != nil {
			return
		}
		a, _ := v.([]any)
		if len(a) != 3 {
			continue
		}
		switch a[0] {
		case "message":
			ch, _ := a[1].(string)
			pl, _ := a[2].(string)
			onMessage(ch, pl)
		case "subscribe":
			select {
			case s.confirmed <- struct{}{}:
			default:
			}
		}
	}
}

func (s *rawSubscription) send(cmd string, channels []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n$%d\r\n%s\r\n", len(channels)+1, len(cmd), cmd)
	for _, ch := range channels {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(ch), ch)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := io.WriteString(s.c, b.String())
	return err
}

func (s *rawSubscription) Add(ctx context.Context, channels ...string) error {
	if err := s.send("SUBSCRIBE", channels); err != nil {
		return err
	}
	for range channels {
		select {
		case <-s.confirmed:
		case <-s.done:
			return net.ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *rawSubscription) Remove(_ context.Context, channels ...string) error {
	return s.send("UNSUBSCRIBE", channels)
}

func (s *rawSubscription) Done() <-chan struct{} { return s.done }

func (s *rawSubscription) Close() error {
	err := s.c.Close()
	<-s.done
	return err
}
