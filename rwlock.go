package relock

import (
	"context"
	"strings"
	"time"

	"github.com/relock-go/relock/internal/scripts"
)

// An RWLock is a read-write lock on Redis: many readers at once, or one
// writer. Each read or write lock it gives is a *Lock, with a mutex's
// guarantees and vocabulary: a lease with a TTL, validity and the lost-lock
// signal (ValidUntil, Done, Err), Refresh, Release, TTL, auto-refresh,
// fencing numbers, metadata, observer events, WithReplicas, and waiters
// that queue and are handed the lock by a release rather than polling.
//
// The policy: writers are preferred, and the queue is FIFO. A writer is
// admitted when no writer and no live reader holds the lock and no live
// waiter queues ahead of it. A reader is admitted at once when no writer
// holds it and no live writer queues; otherwise it queues. So a queued
// writer holds back every reader that comes after it: it waits only for
// the readers that held the lock when it queued (their TTLs, or as long as
// they keep refreshing), never for a stream of new ones. A release hands a
// free lock to the head of the queue: a writer alone, or every live reader
// ahead of the first live writer at once (a writer's release wakes the
// whole batch of readers behind it, each told on pub/sub).
//
// Fencing (WithFencing): a writer draws the next number of the lock's
// fencing counter, as a mutex does; a reader gets the counter as it is,
// the number of the last writer before it, and every writer after it
// draws a greater one. So storage that remembers the highest number a
// reader or writer showed it, and rejects a write with a lower one, turns
// away a writer whose lock expired while readers came after it; and a
// reader knows the writes it may see are those numbered up to its own.
//
// The read-write lock needs scripts: a Client over a driver without
// driver.Scripter (the WATCH path) or a quorum of masters gives
// ErrUnsupported, sending nothing. A name whose companions cannot share
// its hash slot (it contains '}' but no hash tag) gives ErrInvalidArgument.
//
// Its Redis key is the name (after the Client's prefix), as a mutex's: a
// writer holds it as a mutex holder does (token "|" metadata), and while
// readers hold it, it holds a marker that expires with the latest reader.
// So a plain Client.Obtain of the same name excludes readers and writers
// alike, and they exclude it; but it queues apart, so they do not hand
// the lock to one another: a waiter of one kind takes the lock released by
// the other at its next renewal (within about 125 ms), not at once. Do not
// mix them where that matters. Client.Inspect of the name shows the
// marker's token "rw:readers" while readers hold it; RWLock.Inspect tells
// who. Client.Attach rebuilds a writer's lock only, as a mutex lock (its
// release does not hand the lock to the read-write queue).
//
// An RWLock is safe for concurrent use and holds no resources: make one
// per name, or one per call. See docs/rwlock.md.
type RWLock struct {
	c    *Client
	name string
	opts []Option
}

// RWLock returns the read-write lock named name. opts apply to every
// obtain on it, before each call's own, as to Obtain (WithMaxWait,
// WithRetry, WithAutoRefresh, WithFencing, WithMetadata, WithObserver,
// WithReplicas, WithMinHold).
func (c *Client) RWLock(name string, opts ...Option) *RWLock {
	return &RWLock{c: c, name: name, opts: opts}
}

// Name returns the lock's name, without the Client's prefix.
func (rw *RWLock) Name() string { return rw.name }

// ObtainRead takes a read lock for ttl, waiting while a writer holds the
// lock or queues for it, as Obtain waits: the same options, errors and
// clean-up. The Lock it returns is released, refreshed and watched as any
// Lock; its Fence, with WithFencing, is the number of the last writer
// before it.
func (rw *RWLock) ObtainRead(ctx context.Context, ttl time.Duration, opts ...Option) (*Lock, error) {
	return rw.obtain(ctx, true, ttl, opts, nil)
}

// ObtainWrite takes the write lock for ttl, waiting while readers or a
// writer hold the lock or others queue ahead, as Obtain waits. Readers that
// ask after it queue behind it.
func (rw *RWLock) ObtainWrite(ctx context.Context, ttl time.Duration, opts ...Option) (*Lock, error) {
	return rw.obtain(ctx, false, ttl, opts, nil)
}

// TryObtainRead tries once to take a read lock and never waits, as
// TryObtain: a lock held by a writer, or with a writer queued, gives
// ErrNotObtained.
func (rw *RWLock) TryObtainRead(ctx context.Context, ttl time.Duration, opts ...Option) (*Lock, error) {
	return rw.obtain(ctx, true, ttl, opts, tryOnce)
}

// TryObtainWrite tries once to take the write lock and never waits, as
// TryObtain.
func (rw *RWLock) TryObtainWrite(ctx context.Context, ttl time.Duration, opts ...Option) (*Lock, error) {
	return rw.obtain(ctx, false, ttl, opts, tryOnce)
}

func (rw *RWLock) obtain(ctx context.Context, read bool, ttl time.Duration, opts, last []Option) (*Lock, error) {
	if rw == nil || rw.c == nil {
		return nil, invalid("nil client")
	}
	p, err := rw.c.rwPath(read)
	if err != nil {
		return nil, err
	}
	if err := rw.check(); err != nil {
		return nil, err
	}
	all := make([]Option, 0, len(rw.opts)+len(opts)+len(last))
	all = append(append(append(all, rw.opts...), opts...), last...)
	return rw.c.obtain(ctx, rw.name, ttl, p, all)
}

// check rejects a name whose companions cannot share its slot.
func (rw *RWLock) check() error {
	key := rw.c.defaults.prefix + rw.name
	if err := checkKey(key); err != nil {
		return err
	}
	if keysIn(key, len(rw.c.defaults.prefix)).queue == "" {
		return invalid("key %q contains '}' but no hash tag, so the read-write lock's readers and queue cannot share its hash slot; use a tag like {name}", key)
	}
	return nil
}

// rwPath returns the path of a read (read) or write lock, or
// ErrUnsupported where the Client cannot run scripts.
func (c *Client) rwPath(read bool) (path, error) {
	if p, ok := c.path.(permPath); ok {
		return rwPath{sp: p.scriptPath, read: read}, nil
	}
	return nil, errorf("relock: %w: a read-write lock needs one Redis and a driver with scripting (driver.Scripter): not the WATCH path, nor a quorum", ErrUnsupported)
}

// RWLockInfo is what RWLock.Inspect found.
type RWLockInfo struct {
	// Writer is the writer holding the lock; nil when none. (A plain
	// Obtain of the same name shows here too.)
	Writer *RWHolder
	// Readers are the live readers, the latest to expire first (at most
	// 1000).
	Readers []RWHolder
	// Waiters are the live waiters queued for a hand-over, in queue
	// order (waiters that poll are not listed).
	Waiters []RWWaiter
	// Fence is the lock's fencing counter: the last writer's number; 0
	// without a counter.
	Fence int64
}

// RWHolder is one holder of a read-write lock.
type RWHolder struct {
	Token    string
	Metadata string        // what the holder gave WithMetadata
	TTL      time.Duration // how long it has left; -1: no expiry
}

// RWWaiter is one waiter queued for a read-write lock.
type RWWaiter struct {
	Token    string
	Write    bool // a writer; false: a reader
	Metadata string
}

// Inspect reads the lock's state, whoever holds it: its writer, its
// readers, its queue and its fencing counter. It changes nothing. A key of
// another type gives ErrWrongType; a Client without scripting,
// ErrUnsupported.
func (rw *RWLock) Inspect(ctx context.Context) (RWLockInfo, error) {
	if rw == nil || rw.c == nil {
		return RWLockInfo{}, invalid("nil client")
	}
	if ctx == nil {
		return RWLockInfo{}, invalid("nil context")
	}
	p, err := rw.c.rwPath(false)
	if err != nil {
		return RWLockInfo{}, err
	}
	if err := rw.check(); err != nil {
		return RWLockInfo{}, err
	}
	key := rw.c.defaults.prefix + rw.name
	if rw.c.closed.Load() {
		return RWLockInfo{}, errorf("relock: inspect %q: %w", key, ErrClosed)
	}
	info, err := p.(rwPath).inspectRW(ctx, keysIn(key, len(rw.c.defaults.prefix)))
	if err != nil {
		return RWLockInfo{}, opError("inspect", key, err)
	}
	return info, nil
}

// rwMark is what the lock key holds while readers hold the lock (see
// internal/scripts/rw_common.lua): its token part is no valid token.
const rwMark = "rw:readers|readers of a read-write lock"

// rwPath runs a read or write lock's operations with the rw_*.lua scripts,
// through the Client's script path. It has the Client's keys and adds
// three companions, in the lock key's slot: the readers (a sorted set of
// tokens scored by their expiry), their metadata (a hash) and the
// read-write waiter queue.
type rwPath struct {
	sp   scriptPath
	read bool
}

func (p rwPath) kind() string {
	if p.read {
		return "r"
	}
	return "w"
}

func (p rwPath) canWait() bool { return p.sp.w != nil }
func (rwPath) canFence() bool  { return true }
func (rwPath) wait()           {}

// keys returns the rw scripts' KEYS for k.
func rwKeys(k lockKeys) []string {
	return []string{k.lock, companionOf(k.queue, "r"), companionOf(k.queue, "rm"), companionOf(k.queue, "rq"), k.fence}
}

// run runs sc, naming a refusal ErrNoPermission.
func (p rwPath) run(ctx context.Context, sc *scripts.Script, keys []string, w *replicaWait, args ...string) (any, int, error) {
	r, acked, err := p.sp.run(ctx, sc, keys, w, args...)
	if err != nil {
		return nil, 0, scriptRefusal(err)
	}
	return r, acked, nil
}

func (p rwPath) obtain(ctx context.Context, q *obtainReq) (obtainRes, error) {
	fenced := ""
	if q.fenced {
		fenced = "f"
	}
	r, acked, err := p.run(ctx, scripts.RWObtain, rwKeys(q.keys), q.wait, obtainArgs(q, p.kind(), fenced)...)
	if err != nil {
		return obtainRes{holder: -1}, err
	}
	return obtainResult(r, acked)
}

func (p rwPath) release(ctx context.Context, k lockKeys, token string, leave bool) (bool, error) {
	mode := ""
	if leave {
		mode = "leave"
	}
	r, _, err := p.run(ctx, scripts.RWRelease, rwKeys(k), nil, token, k.waiter, k.channel, mode, leftTombstoneArg, fenceLifeArg, p.kind())
	if err != nil {
		return false, err
	}
	n, err := asInt64(r)
	return n == 1, err
}

func (p rwPath) refresh(ctx context.Context, k lockKeys, token string, ttl time.Duration, w *replicaWait) (bool, int, error) {
	r, acked, err := p.run(ctx, scripts.RWRefresh, rwKeys(k), w, token, millis(ttl), p.kind())
	if err != nil {
		return false, 0, err
	}
	n, err := asInt64(r)
	return n == 1, acked, err
}

func (p rwPath) pttl(ctx context.Context, k lockKeys, token string) (time.Duration, bool, error) {
	r, _, err := p.run(ctx, scripts.RWPTTL, rwKeys(k), nil, token, p.kind())
	if err != nil {
		return 0, false, err
	}
	n, err := asInt64(r)
	if err != nil || n == -3 || n == -2 {
		return 0, false, err
	}
	return asDuration(n), true, nil
}

// inspect reads the lock key and the read-write queue, for the holder an
// Obtain that gave up names (the marker names the readers).
func (p rwPath) inspect(ctx context.Context, k lockKeys) (lockState, error) {
	st, err := p.sp.inspect(ctx, lockKeys{lock: k.lock, queue: companionOf(k.queue, "rq"), fence: k.fence, waiter: k.waiter})
	if err != nil {
		if scriptingRefused(err) {
			return st, noPermission(err, "EVALSHA, EVAL: grant @scripting")
		}
		return st, permErr(err)
	}
	return st, nil
}

// inspectRW reads the whole state of the lock (RWLock.Inspect).
func (p rwPath) inspectRW(ctx context.Context, k lockKeys) (RWLockInfo, error) {
	r, _, err := p.run(ctx, scripts.RWInspect, rwKeys(k), nil, k.waiter)
	if err != nil {
		return RWLockInfo{}, err
	}
	a, ok := r.([]any)
	if !ok || len(a) != 5 {
		return RWLockInfo{}, errorf("relock: driver replied %T (%v) to the read-write inspect script where an array of 5 values was due", r, r)
	}
	var info RWLockInfo
	pttl, err := asInt64(a[1])
	if err != nil {
		return RWLockInfo{}, err
	}
	if info.Fence, err = asInt64(a[2]); err != nil {
		return RWLockInfo{}, err
	}
	if a[0] != nil {
		v, ok := a[0].(string)
		if !ok {
			return RWLockInfo{}, errorf("relock: driver replied %T where the lock's value (a string) was due", a[0])
		}
		if v != rwMark {
			token, meta, _ := strings.Cut(v, "|")
			info.Writer = &RWHolder{Token: token, Metadata: meta, TTL: asDuration(pttl)}
		}
	}
	rs, ok1 := a[3].([]any)
	ws, ok2 := a[4].([]any)
	if !ok1 || !ok2 || len(rs)%3 != 0 || len(ws)%3 != 0 {
		return RWLockInfo{}, errorf("relock: driver replied %v to the read-write inspect script: malformed lists of readers or waiters", a)
	}
	for i := 0; i < len(rs); i += 3 {
		token, ok1 := rs[i].(string)
		meta, ok2 := rs[i+2].(string)
		ms, err := asInt64(rs[i+1])
		if !ok1 || !ok2 || err != nil || token == "" {
			return RWLockInfo{}, errorf("relock: driver replied %v where a reader (token, ms, metadata) was due in the read-write inspect script's reply", rs[i:i+3])
		}
		info.Readers = append(info.Readers, RWHolder{Token: token, Metadata: meta, TTL: asDuration(ms)})
	}
	for i := 0; i < len(ws); i += 3 {
		token, ok1 := ws[i].(string)
		kind, ok2 := ws[i+1].(string)
		meta, ok3 := ws[i+2].(string)
		if !ok1 || !ok2 || !ok3 || token == "" || kind != "r" && kind != "w" {
			return RWLockInfo{}, errorf("relock: driver replied %v where a waiter (token, r or w, metadata) was due in the read-write inspect script's reply", ws[i:i+3])
		}
		info.Waiters = append(info.Waiters, RWWaiter{Token: token, Write: kind == "w", Metadata: meta})
	}
	return info, nil
}
