package relock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/scripts"
)

// replicaWait asks for WAIT after a write: n replicas within timeout.
type replicaWait struct {
	n       int
	timeout time.Duration
}

// obtainReq is one obtain try.
type obtainReq struct {
	// path runs the owner-checked operations of this lock: the Client's,
	// or a primitive's own (a semaphore permit, a read or write lock).
	path       path
	key, token string
	plen       int    // how many bytes of key are the Client's prefix
	value      string // what the key holds when ours: the token, then "|" and meta if any
	meta       string // WithMetadata's, or ""
	keys       lockKeys
	fenced     bool      // draw a fencing number
	mode       queueMode // whether this try joins or renews a place in the queue
	first      bool      // the call's first try: a plain SET NX may do
	ttl        time.Duration
	rtt        time.Duration // the longest round trip of the call's tries, for its clean-up
	// lease, when set and shorter than waiterLease, is the place this try
	// asks for in the queue: no longer than the call may wait.
	lease time.Duration
	// placeEnd, when not 0, is when the place must end at the latest, in
	// the server's clock (ms since the epoch): see obtainer.placeEnd.
	placeEnd int64
	wait     *replicaWait // nil: no WAIT
	// settled, for a quorum, closes when every call of the previous try
	// has finished and its clean-up is done, so that a clean-up of one try
	// never undoes the next try with the same token.
	settled chan struct{}

	// Storage for keys.relKeys, relArgs and leaveArgs.
	relKeys            [3]string
	relArgs, leaveArgs [6]string
}

// init names the request's key (with companions; its first r.plen bytes
// are the Client's prefix) and draws its token: 128 random bits in hex, in
// the same allocation as the companions' names. It also builds the release
// script's arguments once.
func (r *obtainReq) init(key string) {
	var raw [16]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go 1.24+)
	var hx [32]byte
	hex.Encode(hx[:], raw[:])
	r.key = key
	r.keys, r.token = buildKeys(key, r.plen, hx[:])
	r.value = r.token
	if r.meta != "" {
		r.value = r.token + "|" + r.meta
	}
	r.setReleaseArgs()
}

// setReleaseArgs builds the release script's KEYS and ARGV for r's keys and
// token into r's own storage: the short form (the lock's keys, the token
// alone; see release.lua) for a release, the full form for a waiter that
// leaves.
func (r *obtainReq) setReleaseArgs() {
	k := &r.keys
	r.relKeys[0] = k.lock
	n := 1
	if k.queue != "" {
		r.relKeys[1], r.relKeys[2] = k.queue, k.fence
		n = 3
	}
	r.relArgs = [6]string{r.token, k.waiter, k.channel, "", leftTombstoneArg, fenceLifeArg}
	r.leaveArgs = r.relArgs
	r.leaveArgs[3] = "leave"
	k.relKeys, k.relArgs = r.relKeys[:n], r.relArgs[:1]
	k.leaveKeys, k.leaveArgs = r.relKeys[:n], r.leaveArgs[:]
}

// queueMode says what a try does with the waiter queue when the lock is
// taken.
type queueMode uint8

const (
	noQueue    queueMode = iota // stay out of the queue
	joinQueue                   // join it (the first queued try)
	renewQueue                  // renew our place; never re-create it
)

var queueModeArg = [...]string{noQueue: "0", joinQueue: "1", renewQueue: "2"}

// Waiter leases and hand-over claims: they bound how long a waiter that
// died, or that cannot be reached, keeps a free lock from the live ones,
// whatever the locks' TTLs.
//
// A queued waiter keeps its place for waiterLease without renewing it, and
// renews it every waiterRenew (one script call each: 1/waiterRenew calls
// per waiter per second), so a waiter that died keeps a free lock from the
// waiters behind it for at most waiterLease after its death; they retry
// when its lease ends (the obtain script tells them when). A release hands
// the lock to the first waiter whose lease is live, with the expiry that
// waiter wrote in its waiter key: a claim of min(TTL, handoverClaim). The
// waiter confirms it, setting the key's expiry to its TTL, before Obtain
// returns; one that never does loses the lock when the claim ends, and the
// next waiter, which saw the claim's PTTL in a renewal, takes it then. (The
// claim is the waiter's to write, not the release's to decide, so that a
// release of any version gives a claim to a waiter that confirms it, and a
// full TTL to a waiter of an earlier version, which does not.)
//
// A waiter that gives up leaves a tombstone for leftTombstone, so a join of
// its delayed by a stall cannot bring it back.
const (
	waiterLease   = 500 * time.Millisecond
	waiterRenew   = waiterLease / 4
	handoverClaim = 250 * time.Millisecond
	leftTombstone = 10 * time.Second
)

// fenceLife is how long a fencing counter lives after its last use. A
// counter made again (after it expired, or after a restart forgot it)
// starts from the server's clock in microseconds, above every number handed
// out before, so the numbers keep increasing either way.
const fenceLife = 24 * time.Hour

// Pre-formatted script arguments for the constants above.
var (
	waiterLeaseArg   = millis(waiterLease)
	leftTombstoneArg = millis(leftTombstone)
	fenceLifeArg     = millis(fenceLife)
	handoverClaimArg = millis(handoverClaim)
)

// holds reports whether a lock key's value v marks token as its owner: the
// token alone, or followed by "|" and metadata.
func holds(v, token string) bool {
	return v == token || len(v) > len(token) && v[len(token)] == '|' && v[:len(token)] == token
}

// obtainRes is what one try found.
type obtainRes struct {
	ok     bool          // the key holds our token
	holder time.Duration // the other holder's remaining TTL, or -1 when unknown
	// left is, when ok and leftKnown, our key's remaining TTL: less than
	// the TTL asked for when the key was set before this try (a retried
	// write, a hand-over found by polling).
	left      time.Duration
	leftKnown bool
	fence     int64 // the fencing number, when asked for and ok
	acked     int   // replicas that acknowledged, when asked for
	queued    bool  // we are in the waiter queue
	lapsed    bool  // a renewal found our place gone: join again
	// serverTime is the server's clock, in microseconds, when the try ran;
	// 0 when the reply does not tell (ours, left, the WATCH path, the
	// obtain script of an earlier version when not queued).
	serverTime int64
}

// path is one way to run the owner-checked operations: Lua scripts, or
// WATCH/MULTI/EXEC. A Client picks one in New.
type path interface {
	obtain(ctx context.Context, r *obtainReq) (obtainRes, error)
	// release deletes the key if it holds token, or hands it to the next
	// waiter; with leave, it first takes token out of the waiter queue.
	release(ctx context.Context, k lockKeys, token string, leave bool) (bool, error)
	// refresh sets the key's TTL if it holds token; with w, it then waits
	// for replicas and reports how many acknowledged.
	refresh(ctx context.Context, k lockKeys, token string, ttl time.Duration, w *replicaWait) (ok bool, acked int, err error)
	// pttl returns the key's remaining TTL (-1: none) if it holds token.
	pttl(ctx context.Context, k lockKeys, token string) (time.Duration, bool, error)
	// canWait reports whether the path can wait for replicas.
	canWait() bool
	// canFence reports whether the path can draw fencing numbers.
	canFence() bool
	// inspect reads the lock's state, whoever holds it.
	inspect(ctx context.Context, k lockKeys) (lockState, error)
	// wait returns once calls the path left running in the background
	// are done. Client.Close calls it.
	wait()
}

// lockState is what inspect found.
type lockState struct {
	value   string // the key's value; "" when it does not exist
	exists  bool
	pttl    int64 // ms; -1 no expiry, -2 missing
	fence   int64
	waiters int
}

func (p scriptPath) inspect(ctx context.Context, k lockKeys) (lockState, error) {
	keys := []string{k.lock}
	if k.queue != "" {
		keys = append(keys, k.queue, k.fence)
	}
	r, _, err := p.run(ctx, scripts.Inspect, keys, nil, k.waiter)
	if err != nil {
		return lockState{}, err
	}
	a, ok := r.([]any)
	if !ok || len(a) != 4 {
		return lockState{}, errorf("relock: driver replied %T (%v) to the inspect script where an array of 4 values was due", r, r)
	}
	var st lockState
	if a[0] != nil {
		if st.value, ok = a[0].(string); !ok {
			return lockState{}, errorf("relock: driver replied %T where the lock's value (a string) was due", a[0])
		}
		st.exists = true
	}
	var n [3]int64
	for i, v := range a[1:] {
		if n[i], err = asInt64(v); err != nil {
			return lockState{}, err
		}
	}
	st.pttl, st.fence, st.waiters = n[0], n[1], int(n[2])
	return st, nil
}

func (p watchPath) inspect(ctx context.Context, k lockKeys) (lockState, error) {
	var st lockState
	err := p.tx(ctx, []string{k.lock}, func(tx driver.Tx) error {
		v, ok, err := tx.Get(ctx, k.lock)
		if err != nil {
			return err
		}
		st = lockState{value: v, exists: ok}
		cmds := [][]string{{"PTTL", k.lock}}
		if k.fence != "" {
			cmds = append(cmds, []string{"GET", k.fence})
		}
		r, err := exec(ctx, tx, cmds...)
		if err != nil {
			return err
		}
		if st.pttl, err = asInt64(r[0]); err != nil {
			return err
		}
		if len(r) > 1 && r[1] != nil {
			s, _ := r[1].(string)
			if st.fence, err = strconv.ParseInt(s, 10, 64); err != nil {
				return errorf("relock: fencing counter %q: %w", s, err)
			}
		}
		return nil
	})
	return st, err
}

func millis(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

func asInt64(v any) (int64, error) {
	n, ok := v.(int64)
	if !ok {
		return 0, errorf("relock: driver replied %T (%v) where an integer (int64) was due", v, v)
	}
	return n, nil
}

func asDuration(ms int64) time.Duration {
	if ms < 0 {
		return -1
	}
	return time.Duration(ms) * time.Millisecond
}

// scriptPath runs each operation as one Lua script call: EVALSHA, then EVAL
// when the server answers NOSCRIPT.
type scriptPath struct {
	conn driver.Conn
	s    driver.Scripter
	w    driver.ReplicaWaiter // nil when the driver cannot WAIT
}

func (p scriptPath) canWait() bool { return p.w != nil }
func (scriptPath) canFence() bool  { return true }
func (scriptPath) wait()           {}

// run calls sc; with w, WAIT follows on the same connection.
func (p scriptPath) run(ctx context.Context, sc *scripts.Script, keys []string, w *replicaWait, args ...string) (r any, acked int, err error) {
	if w == nil {
		r, err = p.s.EvalSha(ctx, sc.SHA1, keys, args...)
		if err != nil && errors.Is(err, driver.ErrNoScript) {
			r, err = p.s.Eval(ctx, sc.Src, keys, args...)
		}
		return r, 0, err
	}
	r, acked, err = p.w.EvalShaWait(ctx, sc.SHA1, keys, args, w.n, w.timeout)
	if err != nil && errors.Is(err, driver.ErrNoScript) {
		r, acked, err = p.w.EvalWait(ctx, sc.Src, keys, args, w.n, w.timeout)
	}
	return r, acked, err
}

func (p scriptPath) obtain(ctx context.Context, q *obtainReq) (obtainRes, error) {
	res := obtainRes{holder: -1}
	if q.first && q.mode == noQueue && !q.fenced && q.wait == nil {
		// A free lock takes one plain SET NX, the cheapest command there
		// is. It cannot barge past live waiters: a release hands the key
		// to them, so it is free while they wait only after an expiry.
		set, err := p.conn.SetNX(ctx, q.key, q.value, q.ttl)
		if err != nil || set {
			res.ok = set
			res.left, res.leftKnown = q.ttl, set
			return res, err
		}
		// Taken, or ours already (a retried SET): the script tells.
	}
	keys := []string{q.key}
	if q.keys.queue != "" {
		keys = append(keys, q.keys.queue)
		if q.fenced {
			keys = append(keys, q.keys.fence)
		}
	}
	r, acked, err := p.run(ctx, scripts.Obtain, keys, q.wait, obtainArgs(q)...)
	if err != nil {
		return res, err
	}
	return obtainResult(r, acked)
}

// obtainArgs returns the ARGV that every obtain script (a lock's, a
// semaphore's, a read-write lock's) starts with, ARGV[1] to ARGV[9]: token,
// ttl, queue mode, waiter key prefix, waiter lease, metadata, fencing
// counter life, hand-over claim and end of the place (see obtain.lua);
// then extra.
func obtainArgs(q *obtainReq, extra ...string) []string {
	claim := handoverClaimArg
	if q.ttl < handoverClaim {
		claim = millis(q.ttl)
	}
	lease := waiterLeaseArg
	if q.lease > 0 && q.lease < waiterLease {
		lease = strconv.FormatInt(int64((q.lease+time.Millisecond-1)/time.Millisecond), 10) // rounded up
	}
	end := ""
	if q.placeEnd > 0 && q.mode != noQueue {
		end = strconv.FormatInt(q.placeEnd, 10)
	}
	return append([]string{q.token, millis(q.ttl), queueModeArg[q.mode], q.keys.waiter, lease, q.meta, fenceLifeArg, claim, end}, extra...)
}

// obtainResult turns an obtain script's reply (see obtainReply), sent with
// acked replicas acknowledging, into what the try found.
func obtainResult(r any, acked int) (obtainRes, error) {
	res := obtainRes{holder: -1, acked: acked}
	rep, err := parseObtainReply(r)
	if err != nil {
		return res, err
	}
	switch rep.status {
	case obtainOurs:
		res.ok, res.fence = true, rep.fence
		if rep.pttl >= 0 {
			res.left, res.leftKnown = asDuration(rep.pttl), true
		}
	case obtainQueued:
		res.holder, res.queued, res.serverTime = asDuration(rep.pttl), true, rep.serverTime
	case obtainLapsed:
		res.holder, res.lapsed, res.serverTime = asDuration(rep.pttl), true, rep.serverTime
	default:
		res.holder, res.serverTime = asDuration(rep.pttl), rep.serverTime
	}
	return res, nil
}

func (p scriptPath) release(ctx context.Context, k lockKeys, token string, leave bool) (bool, error) {
	keys, args := k.relKeys, k.relArgs
	if leave {
		keys, args = k.leaveKeys, k.leaveArgs
	}
	if keys == nil || args[0] != token {
		// Not built for this token (a lock rebuilt by Attach builds them
		// too; this is the general case).
		keys, args = releaseArgs(k, token, leave)
	}
	r, _, err := p.run(ctx, scripts.Release, keys, nil, args...)
	if err != nil {
		return false, err
	}
	n, err := asInt64(r)
	return n == 1, err
}

// releaseArgs returns the release script's KEYS and ARGV: the short form,
// the lock's keys and the token alone, unless leave (a waiter that gives
// up), which needs the full form. See release.lua.
func releaseArgs(k lockKeys, token string, leave bool) (keys, args []string) {
	keys = []string{k.lock}
	if k.queue != "" {
		keys = append(keys, k.queue, k.fence)
	}
	if !leave {
		return keys, []string{token}
	}
	return keys, []string{token, k.waiter, k.channel, "leave", leftTombstoneArg, fenceLifeArg}
}

func (p scriptPath) refresh(ctx context.Context, k lockKeys, token string, ttl time.Duration, w *replicaWait) (bool, int, error) {
	r, acked, err := p.run(ctx, scripts.Refresh, []string{k.lock}, w, token, millis(ttl))
	if err != nil {
		return false, 0, err
	}
	n, err := asInt64(r)
	return n == 1, acked, err
}

func (p scriptPath) pttl(ctx context.Context, k lockKeys, token string) (time.Duration, bool, error) {
	r, _, err := p.run(ctx, scripts.PTTL, []string{k.lock}, nil, token)
	if err != nil {
		return 0, false, err
	}
	n, err := asInt64(r)
	if err != nil || n == -3 || n == -2 {
		return 0, false, err
	}
	return asDuration(n), true, nil
}

// watchPath checks ownership with GET under WATCH and changes the key in
// MULTI/EXEC, trying again when EXEC aborts. Obtain is SET NX PX, then GET to
// recognise our own token; with fencing, it is a transaction too.
type watchPath struct {
	conn driver.Conn
	w    driver.Watcher
}

func (watchPath) canWait() bool  { return false }
func (watchPath) canFence() bool { return true }
func (watchPath) wait()          {}

// maxTxTries bounds the WATCH loop. EXEC aborts only when the lock's key
// changed between WATCH and EXEC, and the next GET sees the change, so a
// second try almost always settles it.
const maxTxTries = 16

var errTxContention = errors.New("relock: the key kept changing under WATCH")

// tx runs fn under WATCH keys, again while EXEC aborts.
func (p watchPath) tx(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	for range maxTxTries {
		err := p.w.Watch(ctx, keys, fn)
		if !errors.Is(err, driver.ErrTxAborted) || ctx.Err() != nil {
			return err
		}
	}
	return errTxContention
}

// owned runs cmds in MULTI/EXEC under WATCH key if the key holds token; it
// reports whether the key held token and the commands ran.
func (p watchPath) owned(ctx context.Context, key, token string, cmds ...[]string) (held bool, replies []any, err error) {
	err = p.tx(ctx, []string{key}, func(tx driver.Tx) error {
		held, replies = false, nil
		v, ok, err := tx.Get(ctx, key)
		if err != nil || !ok || !holds(v, token) {
			return err
		}
		held = true
		replies, err = exec(ctx, tx, cmds...)
		return err
	})
	if err != nil {
		return false, nil, err
	}
	return held, replies, nil
}

// exec runs tx.Exec and checks that every command got a reply.
func exec(ctx context.Context, tx driver.Tx, cmds ...[]string) ([]any, error) {
	r, err := tx.Exec(ctx, cmds...)
	if err == nil && len(r) != len(cmds) {
		err = errorf("relock: driver returned %d replies to a transaction of %d commands", len(r), len(cmds))
	}
	return r, err
}

func (p watchPath) obtain(ctx context.Context, q *obtainReq) (obtainRes, error) {
	if q.fenced {
		return p.obtainFenced(ctx, q)
	}
	res := obtainRes{holder: -1}
	set, err := p.conn.SetNX(ctx, q.key, q.value, q.ttl)
	if err != nil || set {
		res.ok = set
		return res, err
	}
	// The key existed. It may hold our own token: a client that retried a
	// SET NX whose reply was lost sees its own first write.
	v, ok, err := p.conn.Get(ctx, q.key)
	if err != nil {
		return res, err
	}
	if !ok {
		res.holder = 0 // released in between: try again at once
		return res, nil
	}
	res.ok = holds(v, q.token)
	return res, nil
}

// obtainFenced sets the key and increments the fencing counter in one
// transaction.
func (p watchPath) obtainFenced(ctx context.Context, q *obtainReq) (obtainRes, error) {
	var res obtainRes
	err := p.tx(ctx, []string{q.key}, func(tx driver.Tx) error {
		res = obtainRes{holder: -1}
		v, ok, err := tx.Get(ctx, q.key)
		if err != nil {
			return err
		}
		var r []any
		switch {
		case !ok:
			// Nothing is written unless the counter can be: a counter of
			// another type fails here, not inside EXEC after the SET.
			if _, _, err := tx.Get(ctx, q.keys.fence); err != nil {
				return err
			}
			// A missing counter starts from this client's clock in
			// microseconds (the scripts use the server's): see fenceLife.
			start := strconv.FormatInt(time.Now().UnixMicro(), 10)
			r, err = exec(ctx, tx,
				[]string{"SET", q.keys.fence, start, "NX"},
				[]string{"INCR", q.keys.fence},
				[]string{"PEXPIRE", q.keys.fence, fenceLifeArg},
				[]string{"SET", q.key, q.value, "PX", millis(q.ttl)})
			if err == nil {
				r = r[1:]
			}
		case holds(v, q.token):
			r, err = exec(ctx, tx, []string{"GET", q.keys.fence})
			if err == nil {
				s, _ := r[0].(string)
				r[0], err = strconv.ParseInt(s, 10, 64)
			}
		default:
			return nil
		}
		if err != nil {
			return err
		}
		res.ok = true
		res.fence, err = asInt64(r[0])
		return err
	})
	return res, err
}

func (p watchPath) release(ctx context.Context, k lockKeys, token string, _ bool) (bool, error) {
	held, r, err := p.owned(ctx, k.lock, token, []string{"DEL", k.lock})
	if err != nil || !held {
		return false, err
	}
	n, err := asInt64(r[0])
	return n == 1, err
}

func (p watchPath) refresh(ctx context.Context, k lockKeys, token string, ttl time.Duration, _ *replicaWait) (bool, int, error) {
	held, r, err := p.owned(ctx, k.lock, token, []string{"PEXPIRE", k.lock, millis(ttl)})
	if err != nil || !held {
		return false, 0, err
	}
	n, err := asInt64(r[0])
	return n == 1, 0, err
}

func (p watchPath) pttl(ctx context.Context, k lockKeys, token string) (time.Duration, bool, error) {
	held, r, err := p.owned(ctx, k.lock, token, []string{"PTTL", k.lock})
	if err != nil || !held {
		return 0, false, err
	}
	n, err := asInt64(r[0])
	if err != nil || n == -2 {
		return 0, false, err
	}
	return asDuration(n), true, nil
}
