// Package memdriver is an in-memory relock backend: a tiny keyspace with
// Redis's semantics for the handful of commands a lock needs, and no Redis at
// all.
//
// It is an example of a custom backend written from the documentation of the
// driver package alone, and relock's own tests and benchmarks use it where a
// server would only add noise. It implements [driver.Conn] and
// [driver.Watcher], but not [driver.Scripter]: it runs no Lua, so relock
// takes the WATCH/MULTI/EXEC path with it.
//
// A [Store] is the keyspace (the "server"); [Store.Conn] hands out any number
// of [Conn] values (the "clients") that share it. Everything is safe for
// concurrent use. Keys expire at their deadline on the store's clock, which is
// real time plus an offset that [Store.Advance] moves forward, so code that
// sleeps and tests that jump ahead both see keys expire.
//
// Usage with the conformance suite:
//
//	s := memdriver.New()
//	conformance.Run(t, conformance.Harness{
//		NewConn:      func(*testing.T) driver.Conn { return s.Conn() },
//		Advance:      func(_ *testing.T, d time.Duration) { s.Advance(d) },
//		SetWrongType: func(_ *testing.T, key string) { s.SetHash(key) },
//	})
package memdriver

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relock-go/relock/driver"
)

// ErrClosed is returned by every call on a Conn after its Close, and by a
// Tx used after the Watch callback that received it has returned.
var ErrClosed = errors.New("memdriver: connection closed")

// Compile-time checks of the interfaces Conn promises.
var (
	_ driver.Conn    = (*Conn)(nil)
	_ driver.Watcher = (*Conn)(nil)
)

// kind is the Redis type of a key's value.
type kind uint8

const (
	kindString kind = iota + 1
	kindHash
)

// entry is the state of one key. An entry stays in the map while the key
// exists or while a transaction watches it, so that its version survives a
// delete that a watcher must notice.
type entry struct {
	exists   bool
	kind     kind
	val      string
	deadline time.Time // zero: no TTL
	ver      uint64    // Store.seq at the last change; 0 never changed
	watchers int       // number of live watches on this key
}

// Store is an in-memory keyspace shared by the Conns it hands out. The zero
// value is not usable; call New.
type Store struct {
	mu     sync.Mutex
	keys   map[string]*entry
	seq    uint64        // source of versions, guarded by mu
	offset time.Duration // added to time.Now, guarded by mu

	cmds atomic.Int64
}

// New returns an empty Store whose clock is real time.
func New() *Store {
	return &Store{keys: make(map[string]*entry)}
}

// Conn returns a new connection handle to s. Handles are independent: closing
// one leaves s and the other handles working.
func (s *Store) Conn() *Conn {
	return &Conn{s: s}
}

// Advance moves the store's clock forward by d: keys whose deadline is at or
// before the new time are gone, as if d had passed. Real time keeps passing
// as well. Advance panics if d is negative.
func (s *Store) Advance(d time.Duration) {
	if d < 0 {
		panic("memdriver: Advance with a negative duration")
	}
	s.mu.Lock()
	s.offset += d
	s.mu.Unlock()
}

// SetHash stores a hash (a value that is not a string, with no TTL) at key,
// replacing whatever key held, as a test's way to make a WRONGTYPE key. It
// counts as a write for transactions that watch key.
func (s *Store) SetHash(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(key, s.now())
	s.write(e, kindHash, "", time.Time{})
}

// Del deletes key, as another client's DEL would (a test's way to make a
// lock's key vanish behind its holder). It counts as a write for
// transactions that watch key.
func (s *Store) Del(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.lookup(key, s.now()); e != nil {
		s.del(e)
	}
}

// Exists reports whether key exists and has not expired.
func (s *Store) Exists(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookup(key, s.now()) != nil
}

// Commands returns how many Redis commands the store has served to all its
// Conns: SET and GET for Conn.SetNX and Conn.Get; WATCH, then GET per Tx.Get,
// then MULTI, one per queued command and EXEC per Tx.Exec, then UNWATCH when
// the callback returned without an EXEC, for Conn.Watch. Calls refused before
// reaching the store (closed Conn, done context) are not counted.
func (s *Store) Commands() int64 {
	return s.cmds.Load()
}

// now returns the store's clock. The caller holds s.mu.
func (s *Store) now() time.Time {
	return time.Now().Add(s.offset)
}

// lookup returns the live entry for key, expiring it first if its deadline
// has passed, or nil when key does not exist. The caller holds s.mu.
func (s *Store) lookup(key string, now time.Time) *entry {
	e := s.keys[key]
	if e == nil {
		return nil
	}
	s.expire(key, e, now)
	if !e.exists {
		return nil
	}
	return e
}

// entry returns the entry for key, live or not, creating an empty one if
// needed. The caller holds s.mu and must call s.gc(key, e) if it leaves the
// entry empty.
func (s *Store) entry(key string, now time.Time) *entry {
	if e := s.keys[key]; e != nil {
		s.expire(key, e, now)
		if e := s.keys[key]; e != nil { // expire may have dropped it
			return e
		}
	}
	e := &entry{}
	s.keys[key] = e
	return e
}

// expire deletes e's value if its deadline is at or before now. An expiry is
// a change: it bumps the version, as Redis 7 makes EXEC fail when a watched
// key expired. The caller holds s.mu.
func (s *Store) expire(key string, e *entry, now time.Time) {
	if e.exists && !e.deadline.IsZero() && !now.Before(e.deadline) {
		s.del(e)
		s.gc(key, e)
	}
}

// write stores a value in e and bumps its version.
func (s *Store) write(e *entry, k kind, val string, deadline time.Time) {
	s.seq++
	e.exists, e.kind, e.val, e.deadline, e.ver = true, k, val, deadline, s.seq
}

// del removes e's value and bumps its version.
func (s *Store) del(e *entry) {
	s.seq++
	e.exists, e.kind, e.val, e.deadline, e.ver = false, 0, "", time.Time{}, s.seq
}

// gc drops e from the map when nothing needs it any more.
func (s *Store) gc(key string, e *entry) {
	if !e.exists && e.watchers == 0 && s.keys[key] == e {
		delete(s.keys, key)
	}
}

// Conn is one handle to a Store. It implements driver.Conn and
// driver.Watcher, and is safe for concurrent use.
type Conn struct {
	s      *Store
	closed atomic.Bool
}

// check returns the error that refuses a call: ErrClosed, or ctx's error.
func (c *Conn) check(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memdriver: %w", err)
	}
	return nil
}

// SetNX runs SET key value NX PX ttl. ttl is truncated to whole milliseconds
// and must be at least 1 ms, as in Redis. A key of any type blocks the SET.
func (c *Conn) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	if err := c.check(ctx); err != nil {
		return false, err
	}
	s := c.s
	s.cmds.Add(1)
	ms := ttl.Milliseconds()
	if ms < 1 {
		return false, errors.New("memdriver: ERR invalid expire time in 'set' command")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	e := s.entry(key, now)
	if e.exists {
		return false, nil
	}
	s.write(e, kindString, value, now.Add(time.Duration(ms)*time.Millisecond))
	return true, nil
}

// Get runs GET key. A missing key gives ok == false and a nil error; a key
// that is not a string gives an error matching driver.ErrWrongType.
func (c *Conn) Get(ctx context.Context, key string) (string, bool, error) {
	if err := c.check(ctx); err != nil {
		return "", false, err
	}
	c.s.cmds.Add(1)
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.s.get(key, c.s.now())
}

// get is GET. The caller holds s.mu.
func (s *Store) get(key string, now time.Time) (string, bool, error) {
	e := s.lookup(key, now)
	if e == nil {
		return "", false, nil
	}
	if e.kind != kindString {
		return "", false, errWrongType()
	}
	return e.val, true, nil
}

func errWrongType() error {
	return fmt.Errorf("memdriver: WRONGTYPE Operation against a key holding the wrong kind of value: %w", driver.ErrWrongType)
}

// Close marks c closed; later calls on c fail with ErrClosed. The Store and
// other Conns are not affected. Close is safe to call more than once.
func (c *Conn) Close() error {
	c.closed.Store(true)
	return nil
}

// watched is one key a transaction watches and its version at WATCH time.
type watched struct {
	key string
	e   *entry
	ver uint64
}

// Watch runs WATCH keys..., then calls fn with a Tx bound to this watch, and
// returns fn's error. The watch ends at the first Tx.Exec (as EXEC ends it)
// or when fn returns (UNWATCH). The Tx must not be used after fn returns.
func (c *Conn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	s := c.s
	s.cmds.Add(1)
	s.mu.Lock()
	now := s.now()
	ws := make([]watched, len(keys))
	for i, k := range keys {
		e := s.entry(k, now)
		e.watchers++
		ws[i] = watched{key: k, e: e, ver: e.ver}
	}
	s.mu.Unlock()

	tx := &tx{c: c, watches: ws, watching: true}
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		tx.done = true
		if tx.watching {
			s.cmds.Add(1) // UNWATCH
			tx.unwatch()
		}
	}()
	return fn(tx)
}

// tx is the driver.Tx of one Watch call. Its fields are guarded by Store.mu.
type tx struct {
	c        *Conn
	watches  []watched
	watching bool // the watch is still in force
	done     bool // fn has returned
}

// unwatch ends the watch. The caller holds s.mu.
func (t *tx) unwatch() {
	if !t.watching {
		return
	}
	t.watching = false
	for _, w := range t.watches {
		w.e.watchers--
		t.c.s.gc(w.key, w.e)
	}
	t.watches = nil
}

// dirty reports whether a watched key changed since WATCH, expiring watched
// keys whose deadline has passed first. The caller holds s.mu.
func (t *tx) dirty(now time.Time) bool {
	s := t.c.s
	changed := false
	for _, w := range t.watches {
		s.expire(w.key, w.e, now)
		if w.e.ver != w.ver {
			changed = true
		}
	}
	return changed
}

// Get runs GET key on the watched connection.
func (t *tx) Get(ctx context.Context, key string) (string, bool, error) {
	if err := t.c.check(ctx); err != nil {
		return "", false, err
	}
	s := t.c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.done {
		return "", false, ErrClosed
	}
	s.cmds.Add(1)
	return s.get(key, s.now())
}

// Exec runs MULTI, cmds and EXEC. See the package doc of driver for the
// reply mapping. A command Redis would refuse while queueing (unknown name,
// wrong number of arguments) discards the whole transaction, as EXECABORT
// does, and nothing is applied. An error a command meets while running (a
// syntax error, WRONGTYPE) takes that command's place in the replies as an
// error value, the other commands still run, and Exec returns the replies
// together with the first such error.
func (t *tx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	if err := t.c.check(ctx); err != nil {
		return nil, err
	}
	s := t.c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.done {
		return nil, ErrClosed
	}
	s.cmds.Add(int64(len(cmds)) + 2) // MULTI, the commands, EXEC
	defer t.unwatch()

	var queueErr error
	for _, cmd := range cmds {
		if err := checkQueued(cmd); err != nil && queueErr == nil {
			queueErr = err
		}
	}
	if queueErr != nil {
		return nil, fmt.Errorf("memdriver: EXECABORT Transaction discarded because of previous errors: %w", queueErr)
	}

	now := s.now()
	if t.watching && t.dirty(now) {
		return nil, fmt.Errorf("memdriver: EXEC: %w", driver.ErrTxAborted)
	}
	replies := make([]any, len(cmds))
	var first error
	for i, cmd := range cmds {
		r, err := s.run(cmd, now)
		if err != nil {
			r = err
			if first == nil {
				first = err
			}
		}
		replies[i] = r
	}
	return replies, first
}

// arity gives each supported command's arity in Redis's convention: n means
// exactly n words with the name, -n means at least n.
var arity = map[string]int{
	"GET":     2,
	"SET":     -3,
	"DEL":     -2,
	"EXISTS":  -2,
	"PEXPIRE": -3,
	"PTTL":    2,
	"INCR":    2,
}

// checkQueued is the check Redis makes when it queues a command in MULTI.
func checkQueued(cmd []string) error {
	if len(cmd) == 0 {
		return errors.New("ERR empty command")
	}
	name := strings.ToUpper(cmd[0])
	a, ok := arity[name]
	if !ok {
		return fmt.Errorf("ERR unknown command '%s'", cmd[0])
	}
	if (a > 0 && len(cmd) != a) || (a < 0 && len(cmd) < -a) {
		return fmt.Errorf("ERR wrong number of arguments for '%s' command", strings.ToLower(cmd[0]))
	}
	return nil
}

// run executes one checked command at time now. The caller holds s.mu.
func (s *Store) run(cmd []string, now time.Time) (any, error) {
	args := cmd[1:]
	switch strings.ToUpper(cmd[0]) {
	case "GET":
		v, ok, err := s.get(args[0], now)
		if err != nil || !ok {
			return nil, err
		}
		return v, nil
	case "SET":
		return s.set(args, now)
	case "DEL":
		var n int64
		for _, k := range args {
			if e := s.lookup(k, now); e != nil {
				s.del(e)
				s.gc(k, e)
				n++
			}
		}
		return n, nil
	case "EXISTS":
		var n int64
		for _, k := range args {
			if s.lookup(k, now) != nil {
				n++
			}
		}
		return n, nil
	case "PEXPIRE":
		return s.pexpire(args, now)
	case "INCR":
		e := s.entry(args[0], now)
		var n int64
		if e.exists {
			if e.kind != kindString {
				return nil, errWrongType()
			}
			var err error
			if n, err = strconv.ParseInt(e.val, 10, 64); err != nil || n == math.MaxInt64 {
				return nil, errNotInt
			}
		}
		n++
		s.write(e, kindString, strconv.FormatInt(n, 10), e.deadline)
		return n, nil
	case "PTTL":
		e := s.lookup(args[0], now)
		switch {
		case e == nil:
			return int64(-2), nil
		case e.deadline.IsZero():
			return int64(-1), nil
		}
		// Round up, so a live key never reports 0 and a fresh PX n
		// reports n, as Redis's millisecond clock does.
		left := e.deadline.Sub(now)
		return int64((left + time.Millisecond - 1) / time.Millisecond), nil
	}
	panic("memdriver: unchecked command " + cmd[0]) // checkQueued ran first
}

var (
	errSyntax    = errors.New("ERR syntax error")
	errNotInt    = errors.New("ERR value is not an integer or out of range")
	maxMillisecs = int64(math.MaxInt64 / int64(time.Millisecond))
)

// set is SET key value [NX|XX] [GET] [PX ms|EX s|KEEPTTL].
func (s *Store) set(args []string, now time.Time) (any, error) {
	key, val := args[0], args[1]
	var nx, xx, get, keepTTL bool
	var ttl time.Duration
	hasTTL := false
	for i := 2; i < len(args); i++ {
		switch opt := strings.ToUpper(args[i]); opt {
		case "NX":
			nx = true
		case "XX":
			xx = true
		case "GET":
			get = true
		case "KEEPTTL":
			keepTTL = true
		case "PX", "EX":
			if hasTTL || i+1 >= len(args) {
				return nil, errSyntax
			}
			i++
			n, err := strconv.ParseInt(args[i], 10, 64)
			if err != nil {
				return nil, errNotInt
			}
			unit := time.Millisecond
			if opt == "EX" {
				unit = time.Second
			}
			if n <= 0 || n > maxMillisecs/int64(unit/time.Millisecond) {
				return nil, errors.New("ERR invalid expire time in 'set' command")
			}
			ttl, hasTTL = time.Duration(n)*unit, true
		default:
			return nil, errSyntax
		}
	}
	if (nx && xx) || (keepTTL && hasTTL) {
		return nil, errSyntax
	}

	e := s.entry(key, now)
	defer s.gc(key, e)
	var old any
	if get && e.exists {
		if e.kind != kindString {
			return nil, errWrongType()
		}
		old = e.val
	}
	if (nx && e.exists) || (xx && !e.exists) {
		if get {
			return old, nil
		}
		return nil, nil
	}
	deadline := time.Time{}
	switch {
	case hasTTL:
		deadline = now.Add(ttl)
	case keepTTL && e.exists:
		deadline = e.deadline
	}
	s.write(e, kindString, val, deadline)
	if get {
		return old, nil
	}
	return "OK", nil
}

// pexpire is PEXPIRE key ms [NX|XX|GT|LT].
func (s *Store) pexpire(args []string, now time.Time) (any, error) {
	key := args[0]
	ms, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil {
		return nil, errNotInt
	}
	var nx, xx, gt, lt bool
	for _, a := range args[2:] {
		switch strings.ToUpper(a) {
		case "NX":
			nx = true
		case "XX":
			xx = true
		case "GT":
			gt = true
		case "LT":
			lt = true
		default:
			return nil, fmt.Errorf("ERR Unsupported option %s", a)
		}
	}
	if nx && (xx || gt || lt) {
		return nil, errors.New("ERR NX and XX, GT or LT options at the same time are not compatible")
	}
	if gt && lt {
		return nil, errors.New("ERR GT and LT options at the same time are not compatible")
	}
	if ms > maxMillisecs {
		return nil, errors.New("ERR invalid expire time in 'pexpire' command")
	}
	e := s.lookup(key, now)
	if e == nil {
		return int64(0), nil
	}
	deadline := now.Add(time.Duration(ms) * time.Millisecond)
	persistent := e.deadline.IsZero()
	switch {
	case nx && !persistent,
		xx && persistent,
		gt && (persistent || !deadline.After(e.deadline)),
		lt && !persistent && !deadline.Before(e.deadline):
		return int64(0), nil
	}
	if ms <= 0 {
		s.del(e)
		s.gc(key, e)
		return int64(1), nil
	}
	s.write(e, e.kind, e.val, deadline)
	return int64(1), nil
}
