package relock

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/relock-go/relock/internal/scripts"
)

// A Semaphore is a counting semaphore on Redis: at most a limit of permits
// under one name, each held by one owner. A permit is a *Lock, with every
// promise of a lock: a TTL, Refresh and auto-refresh, Done and Err when it
// is lost, a fencing number (WithFencing: one counter for the semaphore,
// so numbers increase across all its permits), metadata, observer events,
// Release; a holder that dies frees its permit when its TTL ends. Waiters
// queue in order of arrival and are woken by a hand-over from the release
// that frees a permit, as Obtain's waiters are (see docs/semaphore.md).
//
// The limit is n, given to Client.Semaphore, unless an operator stored one
// with SetLimit: that one is in force for every caller until cleared.
// Lowering the limit revokes nothing: holders beyond it keep their
// permits until they release or lose them, and no permit is granted until
// fewer than the new limit are held. Raising it hands the new permits to
// the first waiters at once.
//
// A Semaphore needs Lua scripting: on a Client whose driver cannot run
// scripts (the WATCH path) and on a quorum (NewQuorum), Obtain, Inspect
// and SetLimit fail with ErrUnsupported, sending nothing. Its methods are
// safe for concurrent use; a Semaphore is cheap, and two made with the
// same name and Client are the same semaphore.
type Semaphore struct {
	c    *Client
	name string
	key  string // the Redis key: the Client's prefix, then name
	n    int
	opts []Option
	p    *semPath
	err  error // why it cannot be used: an invalid name
	// unsupported is why the Client cannot run it (no scripts, a quorum).
	unsupported error
}

// A SemaphoreInfo is what Semaphore.Inspect found.
type SemaphoreInfo struct {
	// Limit is the limit in force: the stored one (LimitStored) or the
	// Semaphore's own n.
	Limit int
	// LimitStored reports that an operator's limit (SetLimit) is in force.
	LimitStored bool
	// Holders are the live permits, the soonest to expire first. There
	// may be more than Limit after the limit was lowered.
	Holders []PermitInfo
	// Waiters is how many live waiters queue for a permit (waiters that
	// poll are not counted).
	Waiters int
	// Fence is the semaphore's fencing counter: the last fencing number
	// drawn; 0 without a counter.
	Fence int64
}

// A PermitInfo describes one live permit of a semaphore.
type PermitInfo struct {
	Token    string        // the holder's token (Lock.Token)
	Metadata string        // WithMetadata's, or ""
	Fence    int64         // its fencing number; 0 when none was asked for
	TTL      time.Duration // what is left of it
}

// Companion roles of a semaphore, besides a lock's q, f, w and c (see
// keys.go): its holders' hash and its stored limit.
const (
	semHoldRole  = "sh"
	semLimitRole = "sl"
)

// Semaphore returns the semaphore named name with n permits (unless an
// operator stored another limit: see SetLimit). opts are defaults for
// every Obtain of its permits (WithMetadata, WithFencing, ...), before
// the call's own. Nothing is sent: mistakes (an invalid name, n < 1, a
// Client that cannot run scripts) are reported by its methods.
func (c *Client) Semaphore(name string, n int, opts ...Option) *Semaphore {
	s := &Semaphore{c: c, name: name, n: n, opts: opts}
	if c == nil {
		s.err = invalid("nil client")
		return s
	}
	s.key = c.defaults.prefix + name
	if err := checkKey(s.key); err != nil {
		s.err = err
		return s
	}
	plen := len(c.defaults.prefix)
	k := keysIn(s.key, plen)
	if k.queue == "" {
		s.err = invalid("semaphore name %q contains '}' but no hash tag, so its companion keys cannot share its hash slot; use a tag like {name}", s.key)
		return s
	}
	pp, ok := c.path.(permPath)
	if !ok {
		s.unsupported = errorf("relock: semaphore %q: %w: a semaphore needs Lua scripting on a single Redis (the driver implements driver.Scripter; not a quorum)", s.key, ErrUnsupported)
		return s
	}
	s.p = &semPath{
		sp:    pp.scriptPath,
		st:    pp.st,
		keys:  k,
		hold:  companionOf(k.queue, semHoldRole),
		limit: companionOf(k.queue, semLimitRole),
		n:     strconv.Itoa(n),
	}
	return s
}

// Name returns the semaphore's name, as given to Client.Semaphore.
func (s *Semaphore) Name() string { return s.name }

// check reports why s cannot be used, before anything is sent.
func (s *Semaphore) check(ctx context.Context, needN bool) error {
	switch {
	case s == nil:
		return invalid("nil semaphore")
	case s.err != nil:
		return s.err
	case ctx == nil:
		return invalid("nil context")
	case needN && s.n < 1:
		return invalid("semaphore %q: limit %d: want at least 1 permit", s.key, s.n)
	case s.unsupported != nil:
		return s.unsupported
	case s.c.closed.Load():
		return errorf("relock: semaphore %q: %w", s.key, ErrClosed)
	}
	return nil
}

// Obtain takes a permit for ttl, waiting for one as Client.Obtain waits
// for a lock: in the queue, woken by the release that frees a permit,
// within ctx and WithMaxWait, with the same errors (ErrNotObtained when
// none came in time, ErrUnavailable when Redis did not answer, ...). The
// permit is a *Lock: Release gives it back (to the first waiter), Refresh
// extends it, Done and Err tell when it is lost. Every Obtain option
// applies: WithMaxWait, WithRetry, WithAutoRefresh, WithFencing,
// WithMetadata, WithObserver, WithReplicas, WithMinHold.
func (s *Semaphore) Obtain(ctx context.Context, ttl time.Duration, opts ...Option) (*Lock, error) {
	if err := s.check(ctx, true); err != nil {
		return nil, err
	}
	if len(s.opts) > 0 {
		opts = append(append(make([]Option, 0, len(s.opts)+len(opts)), s.opts...), opts...)
	}
	return s.c.obtain(ctx, s.name, ttl, s.p, opts)
}

// TryObtain tries once to take a permit and never waits: Obtain with
// NoRetry, after opts. All permits taken gives ErrNotObtained.
func (s *Semaphore) TryObtain(ctx context.Context, ttl time.Duration, opts ...Option) (*Lock, error) {
	all := make([]Option, 0, len(opts)+1)
	return s.Obtain(ctx, ttl, append(append(all, opts...), tryOnce...)...)
}

// SetLimit stores n as the semaphore's limit, in force for every caller
// whatever n they give Client.Semaphore, until cleared; n <= 0 clears it
// (each caller's own n is then in force). The stored limit has no expiry.
// Raising the limit hands the new permits to the first waiters at once.
// Lowering it revokes no permit: holders beyond it keep theirs until they
// release or lose them, and no permit is granted until fewer than n are
// held.
func (s *Semaphore) SetLimit(ctx context.Context, n int) error {
	if err := s.check(ctx, false); err != nil {
		return err
	}
	p := s.p
	if n < 0 {
		n = 0
	}
	_, _, err := p.run(ctx, scripts.SemLimit, p.allKeys(), nil, strconv.Itoa(n), p.n, p.keys.waiter, p.keys.channel, fenceLifeArg)
	if err != nil {
		return opError("semaphore set limit", s.key, err)
	}
	return nil
}

// Limit returns the limit in force: the stored one, or this Semaphore's n.
func (s *Semaphore) Limit(ctx context.Context) (int, error) {
	info, err := s.Inspect(ctx)
	return info.Limit, err
}

// Inspect reads the semaphore's state: its limit, each live permit (token,
// metadata, fencing number, TTL left), and its live waiters. It changes
// nothing. A key of another type gives ErrWrongType.
func (s *Semaphore) Inspect(ctx context.Context) (SemaphoreInfo, error) {
	if err := s.check(ctx, false); err != nil {
		return SemaphoreInfo{}, err
	}
	info, err := s.p.state(ctx)
	if err != nil {
		return SemaphoreInfo{}, opError("semaphore inspect", s.key, err)
	}
	return info, nil
}

// semPath runs a semaphore's permits: the path of each permit's Lock, with
// the obtainer's contracts (see path), on the Client's script path.
type semPath struct {
	sp          scriptPath
	st          *permState
	keys        lockKeys // the semaphore's key and the lock companions
	hold, limit string   // its own companions
	n           string   // the caller's limit
}

var _ path = (*semPath)(nil)

func (p *semPath) canWait() bool  { return p.sp.w != nil }
func (p *semPath) canFence() bool { return true }
func (p *semPath) wait()          {}

// allKeys are the KEYS of the release, limit and inspect scripts.
func (p *semPath) allKeys() []string {
	return []string{p.keys.lock, p.keys.queue, p.hold, p.limit, p.keys.fence}
}

// run is scriptPath.run with the script path's refusals named: a Redis
// user without @scripting, or refused a key, gets ErrNoPermission (a
// semaphore has no WATCH fallback).
func (p *semPath) run(ctx context.Context, sc *scripts.Script, keys []string, w *replicaWait, args ...string) (any, int, error) {
	if p.st != nil && p.st.noScripts.Load() {
		return nil, 0, noPermission(errors.New("the Redis user may not run scripts"), "EVALSHA")
	}
	r, acked, err := p.sp.run(ctx, sc, keys, w, args...)
	if err != nil {
		return nil, 0, scriptRefusal(err)
	}
	if p.st != nil {
		p.st.proven.Store(true)
	}
	return r, acked, nil
}

func (p *semPath) obtain(ctx context.Context, q *obtainReq) (obtainRes, error) {
	res := obtainRes{holder: -1}
	keys := []string{q.keys.lock, q.keys.queue, p.hold, p.limit}
	if q.fenced {
		keys = append(keys, q.keys.fence)
	}
	r, acked, err := p.run(ctx, scripts.SemObtain, keys, q.wait, obtainArgs(q, p.n)...)
	if err != nil {
		return res, err
	}
	return obtainResult(r, acked)
}

func (p *semPath) release(ctx context.Context, k lockKeys, token string, leave bool) (bool, error) {
	mode := ""
	if leave {
		mode = "leave"
	}
	r, _, err := p.run(ctx, scripts.SemRelease, p.allKeys(), nil, token, k.waiter, k.channel, mode, leftTombstoneArg, fenceLifeArg, p.n)
	if err != nil {
		return false, err
	}
	n, err := asInt64(r)
	return n == 1, err
}

func (p *semPath) refresh(ctx context.Context, k lockKeys, token string, ttl time.Duration, w *replicaWait) (bool, int, error) {
	r, acked, err := p.run(ctx, scripts.SemRefresh, []string{k.lock, p.hold}, w, token, millis(ttl))
	if err != nil {
		return false, 0, err
	}
	n, err := asInt64(r)
	return n == 1, acked, err
}

func (p *semPath) pttl(ctx context.Context, k lockKeys, token string) (time.Duration, bool, error) {
	r, _, err := p.run(ctx, scripts.SemPTTL, []string{k.lock}, nil, token)
	if err != nil {
		return 0, false, err
	}
	n, err := asInt64(r)
	if err != nil || n < 0 {
		return 0, false, err
	}
	return asDuration(n), true, nil
}

// inspect is the state the obtainer names in an error: the semaphore
// exists (as a lock would be held) when all its permits are taken, and
// its value is the permit that frees first.
func (p *semPath) inspect(ctx context.Context, _ lockKeys) (lockState, error) {
	info, err := p.state(ctx)
	if err != nil {
		return lockState{}, err
	}
	st := lockState{pttl: -2, fence: info.Fence, waiters: info.Waiters}
	if len(info.Holders) > 0 && len(info.Holders) >= info.Limit {
		h := info.Holders[0]
		st.exists, st.value, st.pttl = true, h.Token, h.TTL.Milliseconds()
		if h.Metadata != "" {
			st.value += "|" + h.Metadata
		}
	}
	return st, nil
}

// state runs the inspect script.
func (p *semPath) state(ctx context.Context) (SemaphoreInfo, error) {
	r, _, err := p.run(ctx, scripts.SemInspect, p.allKeys(), nil, p.keys.waiter, p.n)
	if err != nil {
		return SemaphoreInfo{}, err
	}
	a, ok := r.([]any)
	if !ok || len(a) != 5 {
		return SemaphoreInfo{}, errorf("relock: driver replied %T (%v) to the semaphore inspect script where an array of 5 values was due", r, r)
	}
	var n [4]int64
	for i := range n {
		if n[i], err = asInt64(a[i]); err != nil {
			return SemaphoreInfo{}, err
		}
	}
	info := SemaphoreInfo{Limit: int(n[0]), LimitStored: n[1] == 1, Fence: n[2], Waiters: int(n[3])}
	hs, ok := a[4].([]any)
	if !ok || len(hs)%3 != 0 {
		return SemaphoreInfo{}, errorf("relock: driver replied %T (%v) where the semaphore's holders were due", a[4], a[4])
	}
	for i := 0; i < len(hs); i += 3 {
		token, ok1 := hs[i].(string)
		entry, ok2 := hs[i+2].(string)
		left, err := asInt64(hs[i+1])
		if !ok1 || !ok2 || err != nil {
			return SemaphoreInfo{}, errorf("relock: driver replied %v where a semaphore holder (token, ms, entry) was due", hs[i:i+3])
		}
		h := PermitInfo{Token: token, TTL: asDuration(left)}
		f, meta, _ := strings.Cut(entry, "|")
		h.Metadata = meta
		if f != "" {
			if h.Fence, err = strconv.ParseInt(f, 10, 64); err != nil {
				return SemaphoreInfo{}, errorf("relock: semaphore holder entry %q: %w", entry, err)
			}
		}
		info.Holders = append(info.Holders, h)
	}
	return info, nil
}
