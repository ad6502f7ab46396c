package relock

// Script-level edge tests: the real scripts (internal/scripts) run on
// miniredis and on real Redis, their replies parsed by wire.go (issue 8),
// the waiter queue's leases and tombstones (issue 9.1), and fencing after
// the counter is gone (issue 9.3). The adapters import this package, so
// these tests talk to Redis through rawConn, a minimal go-redis driver.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/memdriver"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// rawConn is driver.Conn and driver.Scripter over a go-redis client that
// speaks RESP2, whose replies already have the driver package's types.
// It records the last script reply, so a test can parse what the server
// sent.
type rawConn struct {
	rdb *rawRedis

	mu   sync.Mutex
	last any
}

func (c *rawConn) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	err := c.rdb.Do(ctx, "SET", key, value, "NX", "PX", ttl.Milliseconds()).Err()
	if errors.Is(err, errRawNil) {
		return false, nil
	}
	return err == nil, rawErr(err)
}

func (c *rawConn) Get(ctx context.Context, key string) (string, bool, error) {
	v, err := c.rdb.Get(ctx, key).Result()
	if errors.Is(err, errRawNil) {
		return "", false, nil
	}
	return v, err == nil, rawErr(err)
}

func (c *rawConn) Close() error { return nil }

func (c *rawConn) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	return c.record(c.rdb.Eval(ctx, script, keys, anyArgs(args)...).Result())
}

func (c *rawConn) EvalSha(ctx context.Context, sha string, keys []string, args ...string) (any, error) {
	return c.record(c.rdb.EvalSha(ctx, sha, keys, anyArgs(args)...).Result())
}

func (c *rawConn) record(r any, err error) (any, error) {
	if errors.Is(err, errRawNil) {
		r, err = nil, nil
	}
	if err != nil {
		return nil, rawErr(err)
	}
	c.mu.Lock()
	c.last = r
	c.mu.Unlock()
	return r, nil
}

// lastReply returns the last script reply and forgets it.
func (c *rawConn) lastReply() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.last
	c.last = nil
	return r
}

func rawErr(err error) error {
	switch {
	case err == nil:
		return nil
	case strings.Contains(err.Error(), "NOSCRIPT"):
		return errors.Join(driver.ErrNoScript, err)
	case strings.Contains(err.Error(), "WRONGTYPE"):
		return errors.Join(driver.ErrWrongType, err)
	}
	return err
}

func anyArgs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// rawServer is a server the script-level tests run on.
type rawServer struct {
	addr string
	rdb  *rawRedis
}

// eachRawServer runs f on the shared real server. (The same scripts run on
// miniredis through the adapters' conformance runs, in the tests module.)
func eachRawServer(t *testing.T, f func(t *testing.T, s *rawServer)) {
	run := func(t *testing.T, addr string) {
		rdb := &rawRedis{addr: addr}
		t.Cleanup(func() { _ = rdb.Close() })
		f(t, &rawServer{addr: addr, rdb: rdb})
	}
	t.Run("redis", func(t *testing.T) { run(t, testredis.Addr(t)) })
}

// path returns a script path over a new rawConn.
func (s *rawServer) path() (scriptPath, *rawConn) {
	c := &rawConn{rdb: s.rdb}
	return scriptPath{conn: c, s: c}, c
}

// key returns a lock name unique to the run; every key whose name contains
// it is deleted when the test ends.
func (s *rawServer) key(t *testing.T, base string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	u := "edge" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := s.rdb.Keys(ctx, "*"+u+"*").Result()
		for _, k := range keys {
			s.rdb.Del(ctx, k)
		}
	})
	return base + "-" + u
}

func (s *rawServer) get(t *testing.T, key string) (string, bool) {
	t.Helper()
	v, err := s.rdb.Get(context.Background(), key).Result()
	if errors.Is(err, errRawNil) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return v, true
}

func (s *rawServer) queue(t *testing.T, k lockKeys) []string {
	t.Helper()
	q, err := s.rdb.LRange(context.Background(), k.queue, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// try sends one obtain try through the script path, as Obtain does, and
// returns both the parsed wire reply and what the path made of it.
func try(t *testing.T, p scriptPath, rc *rawConn, key, token string, mode queueMode, fenced bool, meta string) (obtainReply, obtainRes) {
	t.Helper()
	q := &obtainReq{key: key, keys: keysFor(key), token: token, value: token, meta: meta, fenced: fenced, mode: mode, ttl: 5 * time.Second}
	if meta != "" {
		q.value = token + "|" + meta
	}
	res, err := p.obtain(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := parseObtainReply(rc.lastReply())
	if err != nil {
		t.Fatal(err)
	}
	return rep, res
}

// Every status the obtain script returns, as parseObtainReply reads it and
// as the script path turns it into a try's result.
func TestWireObtainReplyEveryStatus(t *testing.T) {
	eachRawServer(t, func(t *testing.T, s *rawServer) {
		p, rc := s.path()
		key := s.key(t, "{wire}")
		k := keysFor(key)
		a, b, c, d := testToken(), testToken(), testToken(), testToken()
		seen := map[int64]bool{}
		status := func(rep obtainReply, want int64, what string) {
			t.Helper()
			seen[rep.status] = true
			if rep.status != want {
				t.Fatalf("%s: status %d (%+v), want %d", what, rep.status, rep, want)
			}
		}

		rep, res := try(t, p, rc, key, a, noQueue, true, "")
		status(rep, obtainOurs, "a takes the free key")
		if !res.ok || rep.fence <= 0 || rep.pttl != 5000 || res.fence != rep.fence {
			t.Fatalf("a's win: reply %+v, result %+v; want ours, a fence, pttl 5000", rep, res)
		}
		fence := rep.fence
		rep, res = try(t, p, rc, key, a, noQueue, true, "")
		status(rep, obtainOurs, "a again (a retried write)")
		if !res.ok || rep.fence != fence || rep.pttl <= 0 || rep.pttl > 5000 || !res.leftKnown {
			t.Fatalf("a's retry: reply %+v, result %+v; want ours with the same fence", rep, res)
		}

		rep, res = try(t, p, rc, key, b, noQueue, false, "")
		status(rep, obtainTaken, "b without queueing")
		if res.ok || res.queued || rep.pttl <= 0 || res.holder != asDuration(rep.pttl) {
			t.Fatalf("b: reply %+v, result %+v; want taken with the holder's TTL", rep, res)
		}

		before := time.Now().UnixMicro()
		rep, res = try(t, p, rc, key, b, joinQueue, false, "")
		status(rep, obtainQueued, "b joins")
		if !res.queued || res.serverTime != rep.serverTime {
			t.Fatalf("b joins: reply %+v, result %+v; want queued", rep, res)
		}
		if d := rep.serverTime - before; d < -5e6 || d > 5e6 {
			t.Fatalf("b joins: server time %d is %dµs from the local clock", rep.serverTime, d)
		}
		rep, res = try(t, p, rc, key, b, renewQueue, false, "")
		status(rep, obtainQueued, "b renews")
		if !res.queued {
			t.Fatalf("b renews: %+v", res)
		}

		rep, res = try(t, p, rc, key, c, renewQueue, false, "")
		status(rep, obtainLapsed, "c renews a place it never had")
		if !res.lapsed || res.queued {
			t.Fatalf("c: %+v, want lapsed", res)
		}

		rep, _ = try(t, p, rc, key, d, joinQueue, false, "")
		status(rep, obtainQueued, "d joins")
		if _, err := p.release(context.Background(), k, d, true); err != nil {
			t.Fatal(err)
		}
		rep, res = try(t, p, rc, key, d, renewQueue, false, "")
		status(rep, obtainLeft, "d renews after leaving")
		if res.ok || res.queued || res.lapsed {
			t.Fatalf("d after leaving: %+v, want neither ours, queued nor lapsed", res)
		}
		for st := obtainTaken; st <= obtainLeft; st++ {
			if !seen[int64(st)] {
				t.Errorf("status %d never seen", st)
			}
		}
	})
}

// parseObtainReply refuses what the script never sends.
func TestWireParseObtainReplyRejects(t *testing.T) {
	for _, r := range []any{nil, "x", []any{int64(1)}, []any{int64(1), int64(2), int64(3), int64(4), "5"}, []any{int64(9), int64(0), int64(0), int64(0), int64(0)}, []any{int64(-1), int64(0), int64(0), int64(0), int64(0)}} {
		if rep, err := parseObtainReply(r); err == nil {
			t.Errorf("parseObtainReply(%#v) = %+v, want an error", r, rep)
		}
	}
	for _, p := range []string{"", "tok", "tok:1:2", ":1:2:3", "tok:x:2:3", "tok:1:y:3", "tok:1:2:z"} {
		if h, ok := parseHandover(p); ok {
			t.Errorf("parseHandover(%q) = %+v, want not ok", p, h)
		}
	}
}

// The hand-over announcement the release script publishes, read from the
// channel and parsed by parseHandover; the waiter's next try finds the
// lock its own, with the announced fence and its metadata.
func TestWireHandoverPayload(t *testing.T) {
	eachRawServer(t, func(t *testing.T, s *rawServer) {
		p, rc := s.path()
		key := s.key(t, "{hand}")
		k := keysFor(key)
		a, b := testToken(), testToken()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()

		rep, _ := try(t, p, rc, key, a, noQueue, true, "")
		if rep.status != obtainOurs {
			t.Fatalf("a: %+v", rep)
		}
		rep, _ = try(t, p, rc, key, b, joinQueue, true, "owner=b")
		if rep.status != obtainQueued {
			t.Fatalf("b: %+v", rep)
		}
		ps := s.rdb.Subscribe(ctx, k.channel)
		defer ps.Close()
		if _, err := ps.Receive(ctx); err != nil { // the confirmation
			t.Fatal(err)
		}
		before := time.Now().UnixMicro()
		if ok, err := p.release(ctx, k, a, false); err != nil || !ok {
			t.Fatalf("a's release = %v, %v", ok, err)
		}
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Channel != k.channel {
			t.Fatalf("announced on %q, want %q", msg.Channel, k.channel)
		}
		h, ok := parseHandover(msg.Payload)
		if !ok {
			t.Fatalf("parseHandover(%q) failed", msg.Payload)
		}
		if h.token != b || handoverToken(msg.Payload) != b {
			t.Fatalf("hand-over %+v (%q), want it for b %s", h, msg.Payload, b)
		}
		if h.fence <= rep.fence || h.fence <= 0 {
			t.Fatalf("hand-over fence %d, want above a's", h.fence)
		}
		if d := h.serverTime - before; d < -5e6 || d > 5e6 {
			t.Fatalf("hand-over server time %d is %dµs from the local clock", h.serverTime, d)
		}
		if v, _ := s.get(t, key); v != b+"|owner=b" {
			t.Fatalf("the key holds %q, want b's token and metadata", v)
		}
		rep, res := try(t, p, rc, key, b, renewQueue, true, "owner=b")
		if rep.status != obtainOurs || !res.ok || rep.fence != h.fence {
			t.Fatalf("b's next try: %+v, want ours with fence %d", rep, h.fence)
		}
	})
}

// 9.1: leaving the queue is final. A renewal or a join that arrives after
// the waiter left (delayed by a stall, say) never revives its place, and a
// release does not hand the lock to it.
func TestQueueLateRenewalAfterLeavingNeverRevives(t *testing.T) {
	eachRawServer(t, func(t *testing.T, s *rawServer) {
		p, rc := s.path()
		key := s.key(t, "late")
		k := keysFor(key)
		a, w := testToken(), testToken()
		try(t, p, rc, key, a, noQueue, false, "")
		if rep, _ := try(t, p, rc, key, w, joinQueue, false, ""); rep.status != obtainQueued {
			t.Fatalf("w joins: %+v", rep)
		}
		if ok, err := p.release(context.Background(), k, w, true); err != nil || ok {
			t.Fatalf("w leaves = %v, %v; want not the holder, no error", ok, err)
		}
		left := s.queue(t, k)
		if slices.Contains(left, w) {
			t.Fatalf("queue %v still lists w after it left", left)
		}
		for _, mode := range []queueMode{renewQueue, joinQueue} {
			if rep, _ := try(t, p, rc, key, w, mode, false, ""); rep.status != obtainLeft {
				t.Fatalf("late try (mode %d) after leaving: status %d, want %d (left)", mode, rep.status, obtainLeft)
			}
			if q := s.queue(t, k); !slices.Equal(q, left) {
				t.Fatalf("a late try changed the queue from %v to %v", left, q)
			}
		}
		if ok, err := p.release(context.Background(), k, a, false); err != nil || !ok {
			t.Fatalf("a's release = %v, %v", ok, err)
		}
		if v, ok := s.get(t, key); ok {
			t.Fatalf("the release handed the lock to %q; w had left", v)
		}
	})
}

// 9.1: a waiter that crashed (queued, then never renewed nor left) keeps a
// free lock from the next waiter for at most its lease (waiterLease).
func TestQueueCrashedWaiterBlocksAtMostItsLease(t *testing.T) {
	addr := testredis.Addr(t) // leases must expire in real time
	rdb := &rawRedis{addr: addr}
	t.Cleanup(func() { _ = rdb.Close() })
	s := &rawServer{addr: addr, rdb: rdb}
	p, rc := s.path()
	key := s.key(t, "crashed")
	a, dead := testToken(), testToken()
	q := &obtainReq{key: key, keys: keysFor(key), token: a, value: a, ttl: 300 * time.Millisecond}
	if res, err := p.obtain(context.Background(), q); err != nil || !res.ok {
		t.Fatalf("a: %+v, %v", res, err)
	}
	rep, _ := try(t, p, rc, key, dead, joinQueue, false, "")
	if rep.status != obtainQueued {
		t.Fatalf("the dead waiter's join: %+v", rep)
	}
	joined := time.Now()
	c, err := New(&rawConn{rdb: rdb}) // polls: rawConn has no pub/sub
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := c.Obtain(ctx, key, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	d := time.Since(joined)
	t.Logf("a live waiter got the lock %v after a dead waiter queued ahead of it (lease %v)", d, waiterLease)
	if d > waiterLease+700*time.Millisecond {
		t.Fatalf("a dead waiter kept the free lock from the next for %v, want at most its lease %v", d, waiterLease)
	}
}

// 9.3: after the fencing counter is lost (deleted here, as a restart that
// forgot it), the next fence is still above every earlier one, on the
// script path and the WATCH path.
func TestFenceAfterCounterDeletedStillIncreases(t *testing.T) {
	run := func(t *testing.T, c *Client, key string, del func(counter string)) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var fences []int64
		obtain := func() {
			l, err := c.Obtain(ctx, key, 5*time.Second, WithFencing())
			if err != nil {
				t.Fatal(err)
			}
			fences = append(fences, l.Fence())
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
		obtain()
		obtain()
		del(keysFor(key).fence)
		obtain()
		obtain()
		for i := 1; i < len(fences); i++ {
			if fences[i] <= fences[i-1] {
				t.Fatalf("fences %v: the counter was deleted after the second, and %d is not above %d", fences, fences[i], fences[i-1])
			}
		}
	}
	eachRawServer(t, func(t *testing.T, s *rawServer) {
		c, err := New(&rawConn{rdb: s.rdb})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		key := "{" + s.key(t, "fence") + "}"
		run(t, c, key, func(counter string) {
			if n, err := s.rdb.Del(context.Background(), counter).Result(); err != nil || n != 1 {
				t.Fatalf("DEL %s = %d, %v; want the counter deleted", counter, n, err)
			}
		})
	})
	t.Run("watch", func(t *testing.T) {
		store := memdriver.New()
		c, err := New(store.Conn())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		run(t, c, "{fence}", func(counter string) {
			err := store.Conn().Watch(context.Background(), []string{counter}, func(tx driver.Tx) error {
				r, err := tx.Exec(context.Background(), []string{"DEL", counter})
				if err == nil && r[0] != int64(1) {
					t.Fatalf("DEL %s = %v; want the counter deleted", counter, r[0])
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	})
}

// testToken returns a fresh token of the form relock draws: 32 hex digits.
func testToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Issue 19.1 at the script level: a waiter's key carries its hand-over
// claim (fenced or not), the release sets the key for that claim only, and the waiter's
// next try confirms it to its TTL. A waiter of an earlier version, whose
// key carries its TTL, still gets its whole TTL. A free lock kept by a
// waiter ahead tells the others when that waiter's lease ends, and the
// queue expires with its leases.
func TestHandoverClaimIsConfirmedByTheWaiter(t *testing.T) {
	eachRawServer(t, func(t *testing.T, s *rawServer) {
		ctx := context.Background()
		p, rc := s.path()
		key := s.key(t, "claim")
		k := keysFor(key)
		a, b, old, d := testToken(), testToken(), testToken(), testToken()
		if _, res := try(t, p, rc, key, a, noQueue, false, ""); !res.ok {
			t.Fatalf("a: %+v", res)
		}
		if rep, _ := try(t, p, rc, key, b, joinQueue, true, "m"); rep.status != obtainQueued {
			t.Fatalf("b joins: %+v", rep)
		}
		if w := s.rdb.Get(ctx, k.waiter+b).Val(); w != handoverClaimArg+":f|m" {
			t.Fatalf("b's waiter key holds %q, want its claim, fenced, with its metadata", w)
		}
		if pttl := s.rdb.PTTL(ctx, k.queue).Val(); pttl <= 0 || pttl > waiterLease {
			t.Fatalf("the queue's PTTL is %v, want (0, %v]", pttl, waiterLease)
		}
		// A waiter of an earlier version: its key holds its TTL.
		s.rdb.Set(ctx, k.waiter+old, "5000", waiterLease)
		s.rdb.RPush(ctx, k.queue, old)

		if ok, err := p.release(ctx, k, a, false); err != nil || !ok {
			t.Fatalf("a's release: %v, %v", ok, err)
		}
		if v, _ := s.get(t, key); v != b+"|m" {
			t.Fatalf("after a's release the key holds %q, want b's token and metadata", v)
		}
		if pttl := s.rdb.PTTL(ctx, key).Val(); pttl <= 0 || pttl > handoverClaim {
			t.Fatalf("b's claim: PTTL %v, want (0, %v]", pttl, handoverClaim)
		}
		rep, res := try(t, p, rc, key, b, renewQueue, true, "m")
		if !res.ok || rep.pttl != 5000 || res.left != 5*time.Second || res.fence == 0 {
			t.Fatalf("b's confirming try: reply %+v, result %+v; want ours with its whole TTL", rep, res)
		}
		if pttl := s.rdb.PTTL(ctx, key).Val(); pttl < 4*time.Second {
			t.Fatalf("after b's confirmation: PTTL %v, want b's 5 s", pttl)
		}
		if ok, err := p.release(ctx, k, b, false); err != nil || !ok {
			t.Fatalf("b's release: %v, %v", ok, err)
		}
		if v, _ := s.get(t, key); v != old {
			t.Fatalf("after b's release the key holds %q, want the earlier version's waiter", v)
		}
		if pttl := s.rdb.PTTL(ctx, key).Val(); pttl < 4*time.Second {
			t.Fatalf("a waiter of an earlier version got PTTL %v, want its whole 5 s: it does not confirm", pttl)
		}
		s.rdb.Del(ctx, key)

		// d queued ahead of a free lock (dead, say): the next try is told
		// to look again when d's lease ends.
		s.rdb.Set(ctx, k.waiter+d, "250", waiterLease)
		s.rdb.RPush(ctx, k.queue, d)
		rep, res = try(t, p, rc, key, testToken(), joinQueue, false, "")
		if rep.status != obtainQueued || res.holder <= 0 || res.holder > waiterLease {
			t.Fatalf("behind a live waiter on a free lock: reply %+v, result %+v; want queued, told to look again within %v", rep, res, waiterLease)
		}
	})
}
