package relock_test

// A model-based test of a lock's lifecycle: random sequences of operations
// (Obtain plain, fenced, with metadata, waiting for a hand-over; Refresh
// shorter and longer; auto-refresh; Attach from another Client; Release;
// Close; DEL and PEXPIRE from outside; a server pause; time passing), and
// after every step the invariants that tie what each Lock believes to what
// Redis holds. A failing sequence prints its seed and its steps; replay it
// with RELOCK_MODEL_SEED=<seed>.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

type modelLock struct {
	id       int
	l        *relock.Lock
	rec      *recorder // nil for an attached lock (its events are the Client's)
	client   int
	auto     bool // auto-refreshed
	tampered bool // someone outside relock changed its key since
}

type pendingObtain struct {
	done   chan struct{}
	l      *relock.Lock
	err    error
	rec    *recorder
	auto   bool
	cancel context.CancelFunc
	// tampered: something outside relock changed the key while it waited
	tampered bool
}

type modelClient struct {
	c       *relock.Client
	pending *pendingObtain
}

type model struct {
	t       *testing.T
	s       *srv
	rng     *rand.Rand
	key     string
	clients []*modelClient
	locks   []*modelLock
	tokens  map[string]bool // every token a Lock was returned with
	trace   []string
	nextID  int
	paused  bool // the server may pause (a private real server)
}

func (m *model) logf(format string, args ...any) {
	m.trace = append(m.trace, fmt.Sprintf("%3d  ", len(m.trace)+1)+fmt.Sprintf(format, args...))
}

func (m *model) fail(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("%s\nsteps:\n%s", fmt.Sprintf(format, args...), strings.Join(m.trace, "\n"))
}

func (m *model) newClient(i int) {
	c, err := relock.New(m.s.conn(m.t))
	if err != nil {
		m.t.Fatal(err)
	}
	m.clients[i] = &modelClient{c: c}
}

func (m *model) ttl(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(m.rng.Int64N(int64(hi-lo)/int64(time.Millisecond)+1))*time.Millisecond
}

func (m *model) opts(rec *recorder) ([]relock.Option, string) {
	opts := []relock.Option{relock.WithObserver(rec)}
	var what []string
	if m.rng.IntN(3) == 0 {
		opts = append(opts, relock.WithFencing())
		what = append(what, "fenced")
	}
	if m.rng.IntN(3) == 0 {
		opts = append(opts, relock.WithMetadata(fmt.Sprintf("meta-%d", m.nextID)))
		what = append(what, "meta")
	}
	if m.rng.IntN(3) == 0 {
		opts = append(opts, relock.WithAutoRefresh())
		what = append(what, "auto")
	}
	return opts, strings.Join(what, ",")
}

func (m *model) add(l *relock.Lock, rec *recorder, client int) *modelLock {
	m.nextID++
	ml := &modelLock{id: m.nextID, l: l, rec: rec, client: client}
	m.locks = append(m.locks, ml)
	m.tokens[l.Token()] = true
	return ml
}

// pickLock returns a random lock, or nil.
func (m *model) pickLock() *modelLock {
	if len(m.locks) == 0 {
		return nil
	}
	return m.locks[m.rng.IntN(len(m.locks))]
}

func (m *model) collect(wait time.Duration) {
	for i, mc := range m.clients {
		p := mc.pending
		if p == nil {
			continue
		}
		select {
		case <-p.done:
		default:
			if wait <= 0 {
				continue
			}
			select {
			case <-p.done:
			case <-time.After(wait):
				continue
			}
		}
		mc.pending = nil
		p.cancel()
		if p.err != nil {
			m.logf("client %d: the waiting Obtain returned %v", i, p.err)
			continue
		}
		ml := m.add(p.l, p.rec, i)
		ml.tampered, ml.auto = p.tampered, p.auto
		m.logf("client %d: the waiting Obtain returned lock #%d", i, ml.id)
	}
}

func (m *model) step() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	i := m.rng.IntN(len(m.clients))
	mc := m.clients[i]
	switch r := m.rng.IntN(100); {
	case r < 20: // try to obtain, waiting a little at most
		rec := &recorder{}
		opts, what := m.opts(rec)
		ttl := m.ttl(100*time.Millisecond, 2*time.Second)
		wait := time.Duration(m.rng.IntN(80)) * time.Millisecond
		l, err := mc.c.Obtain(ctx, m.key, ttl, append(opts, relock.WithMaxWait(wait))...)
		if err != nil {
			m.logf("client %d: Obtain(%v, %s, wait %v) = %v", i, ttl, what, wait, err)
			return
		}
		ml := m.add(l, rec, i)
		ml.auto = strings.Contains(what, "auto")
		m.logf("client %d: Obtain(%v, %s) = lock #%d", i, ttl, what, ml.id)
	case r < 30: // start an Obtain that waits for a hand-over
		if mc.pending != nil {
			return
		}
		rec := &recorder{}
		opts, what := m.opts(rec)
		ttl := m.ttl(200*time.Millisecond, 2*time.Second)
		pctx, pcancel := context.WithTimeout(context.Background(), 3*time.Second)
		p := &pendingObtain{done: make(chan struct{}), rec: rec, cancel: pcancel, auto: strings.Contains(what, "auto")}
		mc.pending = p
		c := mc.c
		go func() {
			defer close(p.done)
			p.l, p.err = c.Obtain(pctx, m.key, ttl, opts...)
		}()
		m.logf("client %d: a waiting Obtain(%v, %s) starts", i, ttl, what)
	case r < 45: // refresh by hand, shorter or longer
		ml := m.pickLock()
		if ml == nil {
			return
		}
		ttl := m.ttl(50*time.Millisecond, 3*time.Second)
		before := time.Now()
		err := ml.l.Refresh(ctx, ttl)
		m.logf("lock #%d: Refresh(%v) = %v", ml.id, ttl, err)
		m.sharedWrite(ml)
		if err == nil {
			// Every write from now on renews to ttl (auto-refresh too), so
			// no write can make the lock valid past its send time + ttl,
			// and every send time is before now.
			if until := ml.l.ValidUntil(); until.After(time.Now().Add(ttl)) && ml.l.Err() == nil {
				m.fail("lock #%d: after Refresh(%v) (sent at %v) it is valid until %v, past any write's send time + TTL", ml.id, ttl, before, until)
			}
		}
	case r < 58: // release
		ml := m.pickLock()
		if ml == nil {
			return
		}
		err := ml.l.Release(ctx)
		m.logf("lock #%d: Release = %v", ml.id, err)
		m.sharedWrite(ml)
		if err == nil {
			if v, ok := m.s.get(m.t, m.key); ok && strings.HasPrefix(v, ml.l.Token()) {
				m.fail("lock #%d: Release returned nil but the key still holds its token", ml.id)
			}
		}
	case r < 63: // attach from another Client
		ml := m.pickLock()
		if ml == nil {
			return
		}
		j := (ml.client + 1 + m.rng.IntN(len(m.clients)-1)) % len(m.clients)
		l, err := m.clients[j].c.Attach(ctx, m.key, ml.l.Token())
		if err != nil {
			m.logf("client %d: Attach(lock #%d) = %v", j, ml.id, err)
			return
		}
		na := m.add(l, nil, j)
		na.tampered = ml.tampered
		if ml.auto {
			// The source goes on refreshing: writes the new Lock value
			// does not see.
			na.tampered = true
		}
		m.logf("client %d: Attach(lock #%d) = lock #%d", j, ml.id, na.id)
	case r < 68: // close a Client, then replace it
		p := mc.pending
		start := time.Now()
		err := mc.c.Close()
		m.logf("client %d: Close = %v", i, err)
		if p != nil {
			select {
			case <-p.done:
			case <-time.After(2 * time.Second):
				m.fail("client %d: a waiting Obtain had not returned 2s after Close (%v)", i, time.Since(start))
			}
			if p.err != nil && !errors.Is(p.err, relock.ErrClosed) && !errors.Is(p.err, relock.ErrNotObtained) {
				m.fail("client %d: the waiting Obtain ended by Close returned %v, want ErrClosed", i, p.err)
			}
		}
		m.collect(0)
		m.newClient(i)
	case r < 71: // DEL from outside
		m.s.do(m.t, "DEL", m.key)
		m.tamper()
		m.logf("outside: DEL")
	case r < 74: // PEXPIRE from outside
		ms := 10 + m.rng.IntN(300)
		m.s.do(m.t, "PEXPIRE", m.key, strconv.Itoa(ms))
		m.tamper()
		m.logf("outside: PEXPIRE %d", ms)
	case r < 77: // a server pause
		if !m.paused {
			return
		}
		m.s.do(m.t, "CLIENT", "PAUSE", "150", "WRITE")
		m.logf("outside: CLIENT PAUSE 150 WRITE")
	case r < 85: // TTL
		ml := m.pickLock()
		if ml == nil {
			return
		}
		d, err := ml.l.TTL(ctx)
		m.logf("lock #%d: TTL = %v, %v", ml.id, d, err)
	case r < 88: // cancel a waiting Obtain
		if mc.pending != nil {
			mc.pending.cancel()
			m.logf("client %d: the waiting Obtain is cancelled", i)
			m.collect(5 * time.Second)
		}
	default: // time passes
		d := time.Duration(m.rng.IntN(150)) * time.Millisecond
		// miniredis's keys expire only when told to; FastForward would
		// not match auto-refreshes made while we sleep, so its keys
		// outlive the locks' validity (the safe side): the real server
		// checks expiry.
		time.Sleep(d)
		m.logf("%v pass", d)
	}
}

// sharedWrite marks the other Lock values of ml's acquisition (Attach
// made them): ml's write is, for them, a write from outside, which they
// cannot know of until they ask Redis.
func (m *model) sharedWrite(ml *modelLock) {
	for _, o := range m.locks {
		if o != ml && o.l.Token() == ml.l.Token() {
			o.tampered = true
		}
	}
}

// tamper marks the locks whose token the key holds: something outside
// relock changed their key, and they cannot know until they ask Redis.
func (m *model) tamper() {
	for _, ml := range m.locks {
		ml.tampered = true
	}
	for _, mc := range m.clients {
		if mc.pending != nil {
			mc.pending.tampered = true
		}
	}
}

// check verifies the invariants against the server's truth.
func (m *model) check() {
	m.collect(0)
	valid := map[string]int{} // token -> a valid lock's id
	for _, ml := range m.locks {
		l := ml.l
		until := l.ValidUntil()
		err := l.Err()
		v, held := m.s.get(m.t, m.key)
		pttl := m.s.pttl(m.t, m.key)
		after := time.Now()
		if err == nil && !ml.tampered && until.After(after.Add(2*time.Millisecond)) {
			if !held || !strings.HasPrefix(v, l.Token()) {
				m.fail("lock #%d: Err() is nil and it is valid for %v more, but the key holds %q", ml.id, until.Sub(after), v)
			}
			if pttl >= 0 && after.Add(pttl+time.Millisecond).Before(until) {
				m.fail("lock #%d: valid until %v, but the key expires at about %v (PTTL %v)", ml.id, until, after.Add(pttl), pttl)
			}
		}
		if err == nil && !ml.tampered {
			for tok, id := range valid {
				if tok != l.Token() {
					m.fail("two holders: locks #%d and #%d both have Err() == nil", id, ml.id)
				}
			}
			valid[l.Token()] = ml.id
		}
		if ml.rec == nil {
			continue
		}
		if n := ml.rec.count(relock.EventObtained); n != 1 {
			m.fail("lock #%d: %d obtained events, want 1 (%v)", ml.id, n, ml.rec.kinds())
		}
		ends := ml.rec.count(relock.EventReleased) + ml.rec.count(relock.EventLost)
		if ends > 1 || (err != nil && ends != 1) {
			m.fail("lock #%d ended with %v: %d end events, want exactly one (%v)", ml.id, err, ends, ml.rec.kinds())
		}
	}
}

func (m *model) lockByID(id int) *modelLock {
	for _, ml := range m.locks {
		if ml.id == id {
			return ml
		}
	}
	return nil
}

// finish cancels what still waits, closes every Client and checks that
// nothing of theirs is left: the key holds no token but a returned Lock's.
func (m *model) finish() {
	for _, mc := range m.clients {
		if mc.pending != nil {
			mc.pending.cancel()
		}
	}
	m.collect(5 * time.Second)
	for i, mc := range m.clients {
		if err := mc.c.Close(); err != nil {
			m.logf("client %d: Close = %v", i, err)
		}
	}
	if v, ok := m.s.get(m.t, m.key); ok {
		tok, _, _ := strings.Cut(v, "|")
		if !m.tokens[tok] {
			m.fail("after every Client closed, the key holds %q, a token no Lock was returned with: a waiter's place or hand-over was left behind", v)
		}
	}
}

func TestLifecycleModel(t *testing.T) {
	seqs, steps := 40, 30
	if testing.Short() {
		seqs, steps = 4, 20
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("RELOCK_MODEL_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("RELOCK_MODEL_SEED=%q: %v", s, err)
		}
		seed, seqs = n, 1
	}
	run := func(t *testing.T, s *srv, paused bool) {
		for n := range seqs {
			seq := seed + uint64(n)
			ok := t.Run(fmt.Sprintf("seed=%d", seq), func(t *testing.T) {
				m := &model{t: t, s: s, rng: rand.New(rand.NewPCG(seq, 0x5eed)), key: s.key(t, "model"),
					clients: make([]*modelClient, 3), tokens: map[string]bool{}, paused: paused}
				for i := range m.clients {
					m.newClient(i)
				}
				for range steps {
					m.step()
					m.check()
				}
				m.finish()
			})
			if !ok {
				t.Logf("replay with RELOCK_MODEL_SEED=%d", seq)
				return
			}
		}
	}
	t.Run("miniredis", func(t *testing.T) {
		mini := miniredis.RunT(t)
		run(t, &srv{addr: mini.Addr(), mini: mini}, false)
	})
	t.Run("redis", func(t *testing.T) {
		p := testredis.Start(t)
		run(t, &srv{addr: p.Addr()}, true)
	})
}
