package relock

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relock-go/relock/driver"
)

// Limits on what Obtain and Refresh accept.
const (
	// MaxKeyLen is the longest key, in bytes, that relock accepts.
	MaxKeyLen = 1024
	// MinTTL is the shortest lock lifetime. A lock is valid for its TTL
	// less a drift margin of TTL/100 + 2 ms, counted from when the winning
	// try was sent, so shorter TTLs would leave a lock that is dead, or
	// nearly, on arrival. TTLs are rounded down to whole milliseconds, the
	// precision of PX.
	MinTTL = 10 * time.Millisecond
	// MaxTTL is the longest lock lifetime. Redis rejects some larger PX
	// values outright and overflows near others, so relock caps TTLs itself.
	MaxTTL = 365 * 24 * time.Hour
)

// A Client obtains locks through one driver connection. It is safe for
// concurrent use by many goroutines; make one per Redis and share it.
type Client struct {
	conns    []driver.Conn // closed by Close
	path     path
	notifier *notifier // nil: waiters poll
	defaults settings
	closed   atomic.Bool

	mu   sync.Mutex      // orders starting a refresher against Close
	life context.Context // cancelled by Close: auto-refresh and waiting Obtains stop
	// obtaining is read-locked by each Obtain in progress; Close takes it
	// to wait until they have all returned and filed their clean-ups.
	obtaining  sync.RWMutex
	shutdown   context.CancelFunc
	refreshers sync.WaitGroup // the auto-refresh goroutines
	cleanups   tracker        // clean-ups of failed tries and of Do's release
}

// New returns a Client over conn, usually an adapter wrapping a client the
// caller built (goredis.New(rdb), redigo.New(pool), ...). conn must
// implement driver.Scripter or driver.Watcher; when it implements both,
// relock uses scripts.
func New(conn driver.Conn, opts ...Option) (*Client, error) {
	if err := checkConn(conn); err != nil {
		return nil, err
	}
	c := newClient([]driver.Conn{conn})
	p, err := pathFor(conn)
	if err != nil {
		return nil, err
	}
	c.path = p
	if sp, ok := p.(permPath); ok {
		if sub, ok := conn.(driver.Subscriber); ok && sp.s != nil {
			c.notifier = newNotifier(sub)
		}
	}
	if err := c.applyDefaults(opts); err != nil {
		return nil, err
	}
	return c, nil
}

// checkConn rejects a nil Conn, a typed nil, and a Conn whose own Validate
// says it was built wrong, before anything is sent.
func checkConn(conn driver.Conn) error {
	if conn == nil {
		return invalid("nil driver connection")
	}
	if v := reflect.ValueOf(conn); v.Kind() == reflect.Pointer && v.IsNil() {
		return invalid("nil driver connection (%T)", conn)
	}
	if v, ok := conn.(driver.Validator); ok {
		if err := v.Validate(); err != nil {
			return errorf("relock: %w: %w", ErrInvalidArgument, err)
		}
	}
	return nil
}

// pathFor picks how to run the owner-checked operations over conn: scripts
// where it can, else WATCH/MULTI/EXEC.
func pathFor(conn driver.Conn) (path, error) {
	if s, ok := conn.(driver.Scripter); ok {
		w, _ := conn.(driver.ReplicaWaiter)
		return newPermPath(scriptPath{conn: conn, s: s, w: w}, conn), nil
	}
	if w, ok := conn.(driver.Watcher); ok {
		return watchPath{conn: conn, w: w}, nil
	}
	return nil, errorf("relock: %w: %T implements neither driver.Scripter nor driver.Watcher", ErrUnsupported, conn)
}

func newClient(conns []driver.Conn) *Client {
	c := &Client{conns: conns, defaults: defaultSettings()}
	c.life, c.shutdown = context.WithCancel(context.Background())
	return c
}

// applyDefaults sets the Client's defaults from opts and checks them, so
// that a Client whose every Obtain would fail is never made.
func (c *Client) applyDefaults(opts []Option) error {
	for _, o := range opts {
		if o != nil {
			o.apply(&c.defaults)
		}
	}
	if err := checkPrefix(c.defaults.prefix); err != nil {
		return err
	}
	c.defaults.prefixGiven = false // given to New: Obtain checks its own options
	return c.validate(&c.defaults, c.path)
}

var (
	driversMu sync.RWMutex
	drivers   = map[string]driver.Driver{}
)

// Register makes a driver available by name to Open. Adapters call it from
// an init function. Like database/sql.Register, it panics when d is nil or
// the name is taken, since either is a programming error in the driver.
func Register(name string, d driver.Driver) {
	driversMu.Lock()
	defer driversMu.Unlock()
	if d == nil {
		panic("relock: Register driver is nil")
	}
	if _, dup := drivers[name]; dup {
		panic("relock: Register called twice for driver " + name)
	}
	drivers[name] = d
}

// Drivers returns the names of the registered drivers, sorted.
func Drivers() []string {
	driversMu.RLock()
	defer driversMu.RUnlock()
	names := make([]string, 0, len(drivers))
	for n := range drivers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Open opens a connection with the named driver, for example "goredis",
// "redigo" or "rueidis" after importing the adapter, and returns a Client
// over it. dsn is a redis://, rediss:// or unix:// URL. The three adapters
// share one vocabulary of query options (pool_size, dial_timeout,
// read_timeout, write_timeout, client_name, db; the database number also
// as the path, the user and password as the URL's userinfo; see the
// README's table), and each also takes its client library's own. The
// Client owns the connection: Close closes it. Open does not connect: call
// Client.Ping to check that Redis answers.
func Open(driverName, dsn string, opts ...Option) (*Client, error) {
	driversMu.RLock()
	d, ok := drivers[driverName]
	driversMu.RUnlock()
	if !ok {
		return nil, errorf("relock: %w: unknown driver %q (forgotten import?)", ErrInvalidArgument, driverName)
	}
	conn, err := d.Open(dsn)
	if err != nil {
		if !strings.Contains(dsn, "://") {
			// "127.0.0.1:6379" or "localhost": url.Parse's complaint
			// ("first path segment in URL cannot contain colon") does not
			// say what was wanted.
			return nil, errorf("relock: open %s: the DSN is not a URL: want %s: %w", driverName, dsnForms, err)
		}
		return nil, errorf("relock: open %s: %w", driverName, err)
	}
	c, err := New(conn, opts...)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return c, nil
}

// dsnForms is what a DSN looks like, for the error of one that is not a URL.
const dsnForms = "redis://[user:password@]host:port[/db][?option=value...], rediss://... for TLS, or unix:///path/to/socket"

// Close makes every Obtain in progress return ErrClosed (a waiting one at
// once; one whose first try is on the wire when that try returns), and
// takes their places out of the waiter queues, passing on any lock handed
// to them meanwhile; it stops the auto-refresh of the Client's locks (they
// are lost, with ErrClosed, and released, bounded and best effort), waits
// for the clean-ups still running in the background (each cut to one last
// attempt), and only then closes the driver connection; no goroutine of
// the Client outlives it. A connection made by an adapter from a client the caller
// built leaves that client open. Locks without auto-refresh stay in Redis
// until they expire or are released: they may have been handed to another
// process (Attach). Calls after Close return ErrClosed.
func (c *Client) Close() error {
	if c == nil {
		return invalid("nil client")
	}
	c.mu.Lock()
	if c.closed.Swap(true) {
		c.mu.Unlock()
		return nil
	}
	c.shutdown()
	c.mu.Unlock()
	// Wait for the Obtains in progress: each leaves its queue place by
	// filing a clean-up, which must go out before the connection closes.
	c.obtaining.Lock()
	c.obtaining.Unlock()
	c.refreshers.Wait()
	c.cleanups.close()
	c.path.wait()
	var errs []error
	if c.notifier != nil {
		errs = append(errs, c.notifier.close())
	}
	for _, conn := range c.conns {
		errs = append(errs, conn.Close())
	}
	return errors.Join(errs...)
}

// Obtain takes the lock named key for ttl, waiting while another owner
// holds it, as the retry strategy (DefaultRetry unless WithRetry says
// otherwise), the wait budget (WithMaxWait) and ctx allow.
//
// Each call draws a new random 128-bit token; the lock is ours while the key
// holds it. When the strategy or the budget runs out, the error matches
// ErrNotObtained; when ctx ends first, it matches ErrNotObtained and ctx's
// error. Obtain returns by ctx's deadline, and by the wait budget plus
// lastTryGrace, provided the driver honours contexts (the three adapters
// do).
//
// ErrNotObtained means that a try found the lock held by another owner.
// A try that gets no answer (a network error, a timeout, a TLS failure) or
// that the server refuses for now (BUSY, LOADING, OOM, READONLY, ...: see
// ErrUnavailable) is retried like a taken lock, as the strategy, the
// budget and ctx allow, after a pause of at least the strategy's wait and
// of about 10 ms, doubling to 500 ms while the failures go on. If no try ever
// found the lock held, the call then fails with ErrUnavailable, with ctx's
// error when ctx ended it and with the last try's error; if one did, with
// ErrNotObtained. With NoRetry (TryObtain) one failed try is enough. So
// with DefaultRetry and a context without deadline, Obtain waits for Redis
// to come back as it waits for a holder: give it a deadline or a budget.
// A permanent refusal ends the call at once: NOPERM (ErrNoPermission),
// WRONGTYPE (ErrWrongType), an unknown command (ErrUnsupported), and any
// error reply relock does not know, returned as the driver reported it.
//
// A lock reported as not obtained never stays behind with our token: if a
// try fails in a way that leaves its outcome unknown (a timeout, a
// cancelled context, a broken connection), and the call ends without the
// lock, Obtain deletes the key if it holds our token, and leaves the
// waiter queue, in the background, retried for a while; Client.Close waits
// for that. The tries after such a failure use the same token, so a key
// that the lost try did set is found ours. A lock is never returned
// already past its validity: such a win (after a stall, say) is given
// back or passed on, and counts as a failed try.
func (c *Client) Obtain(ctx context.Context, key string, ttl time.Duration, opts ...Option) (*Lock, error) {
	if c == nil {
		return nil, invalid("nil client")
	}
	return c.obtain(ctx, key, ttl, c.path, opts)
}

// obtain is Obtain through p: the Client's path for a Lock, a primitive's
// own for its leases (a semaphore's permit, a read or write lock). Every
// primitive gets Obtain's waiting, queueing, hand-overs, clean-ups and
// events this way.
func (c *Client) obtain(ctx context.Context, key string, ttl time.Duration, p path, opts []Option) (*Lock, error) {
	if c == nil {
		return nil, invalid("nil client")
	}
	if ctx == nil {
		return nil, invalid("nil context")
	}
	key = c.defaults.prefix + key
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := checkTTL(ttl); err != nil {
		return nil, err
	}
	st := c.defaults
	for _, o := range opts {
		if o != nil {
			o.apply(&st)
		}
	}
	// The Lock is made now, with the request inside it: one allocation
	// for both, and one more for the token and the companions' names.
	lock := &Lock{req: obtainReq{path: p, ttl: ttl, meta: st.metadata, plen: len(c.defaults.prefix)}}
	req := &lock.req
	req.init(key)
	if err := c.checkSettings(&st, req); err != nil {
		return nil, err
	}
	// Close waits for this call to file its clean-ups (a queue leave, the
	// deletion of a key a cut try may have set) before it closes the
	// connection.
	c.obtaining.RLock()
	defer c.obtaining.RUnlock()
	if c.closed.Load() {
		return nil, errorf("relock: obtain %q: %w", req.key, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		err = errorf("relock: obtain %q: %w: %w", req.key, ErrNotObtained, err)
		if st.observer != nil {
			observeObtain(ctx, st.observer, Event{Kind: EventNotObtained, Key: key, Time: time.Now(), TTL: ttl, Err: err}, nil)
		}
		return nil, err
	}
	o := obtainer{c: c, ctx: ctx, lock: lock, req: req, st: &st, start: time.Now()}
	l, err := o.run()
	o.done(l != nil)
	if l != nil && l.ready != nil {
		defer close(l.ready) // the refresher may go on
	}
	if st.observer != nil {
		e := Event{Kind: EventObtained, Key: key, Time: time.Now(), Tries: o.tries, TTL: ttl}
		e.Wait = e.Time.Sub(o.start)
		if err != nil {
			e.Kind, e.Err = EventNotObtained, err
		} else {
			e.HandedOver, e.Fence, e.Held = o.handedOver, l.fence, e.Time.Sub(l.obtainedAt)
		}
		observeObtain(ctx, st.observer, e, l)
	}
	return l, err
}

// observeObtain tells obs about e, the outcome of an Obtain called with
// ctx; a ContextObserver's answer becomes l's context.
func observeObtain(ctx context.Context, obs Observer, e Event, l *Lock) {
	co, ok := obs.(ContextObserver)
	if !ok {
		obs.Observe(e)
		return
	}
	lctx := co.ObserveContext(ctx, e)
	if l != nil {
		l.setLockCtx(lctx, ctx)
	}
}

// lastTryGrace is how long the last try, sent as the wait budget
// (WithMaxWait) runs out, may take: Obtain returns by the budget plus this.
const lastTryGrace = 100 * time.Millisecond

// minRetryWait is the shortest wait between two tries that a retry
// strategy can ask for: a strategy that answers less (or a negative wait)
// gets this, so that no strategy can make Obtain spin.
const minRetryWait = time.Millisecond

// obtainer is one Obtain call in progress. Its concerns, each in one
// method: try sends one try and files what it says about the queue; won
// turns a win into a Lock; nextWait asks the strategy and bounds its
// answer by the holder's TTL, the queue lease and the budget; sleep waits
// for the timer, a hand-over or the end; done cleans up.
type obtainer struct {
	c     *Client
	ctx   context.Context // the caller's, bounded by the wait budget
	lock  *Lock           // returned once obtained
	req   *obtainReq      // &lock.req
	st    *settings
	start time.Time

	budgetEnd  time.Time // zero: no budget
	tries      int
	handedOver bool // the lock came by hand-over

	// What the tries found: seen, that some try got an answer showing
	// another holder; lastErr, the error of the last try that got no
	// answer or a refusal; failing, how many tries in a row failed so; and
	// unknown, that a failed try may have left our token in Redis.
	seen    bool
	lastErr error
	failing int
	unknown bool

	timer  *time.Timer
	notify bool          // this call may wait for a hand-over
	handed <-chan string // set once registered with the notifier
	placed bool          // the last try queued or renewed our place
	queued bool          // a try may have put us in the waiter queue
	// pending is the try on the wire while the call listens for a
	// hand-over, and confirming the confirmation of a hand-over (see
	// detached); nil when none.
	pending, confirming *detached
	// sent is when the last try was sent. clockLo, once clockKnown, is a
	// lower bound of the server's clock less ours, in microseconds, from
	// every try whose reply told the server's clock: the server ran it
	// between its sending and its reply.
	sent       time.Time
	clockLo    int64
	clockKnown bool
	// syncSent and syncServer, once syncKnown, are the send time of the
	// last try whose reply told the server's clock, and that clock, in
	// microseconds: the server's clock read at most syncServer at
	// syncSent (see claimHolds).
	syncSent   time.Time
	syncServer int64
	syncKnown  bool
	// lastRTT and maxRTT are the round trips of the last try answered
	// and the longest one in this call; queuedRTT the longest after the
	// first try, which may have paid for a new connection or loaded a
	// script.
	lastRTT, maxRTT, queuedRTT time.Duration
}

func (o *obtainer) run() (*Lock, error) {
	c, req, st := o.c, o.req, o.st
	if st.maxWait > 0 {
		o.budgetEnd = o.start.Add(st.maxWait)
		ctx, cancel := context.WithDeadline(o.ctx, o.budgetEnd.Add(lastTryGrace))
		defer cancel()
		o.ctx = ctx
	}
	o.notify = c.notifier != nil && req.keys.queue != "" && req.wait == nil
	if o.notify && c.notifier.subscribed(req.keys.channel) {
		o.register()
	}
	for n := 1; ; n++ {
		res, l, err := o.try(n)
		if l != nil || err != nil {
			return o.result(l, err)
		}
		if res.ok {
			if l, err := o.won(res); l != nil || err != nil {
				return o.result(l, err)
			}
			// Dead on arrival: given back; a failed try.
		}
		if n == 1 {
			// From now on the call waits: Close must be able to end it,
			// also while a try is on the wire.
			ctx, cancel := context.WithCancelCause(o.ctx)
			stop := context.AfterFunc(c.life, func() { cancel(ErrClosed) })
			defer stop()
			defer cancel(nil)
			o.ctx = ctx
		}
		wait, err := o.nextWait(n, res)
		if err != nil {
			return nil, err
		}
		if l, err := o.sleep(wait); l != nil || err != nil {
			return o.result(l, err)
		}
	}
}

// result returns what ends the call. A lock won means that no clean-up of
// an earlier failed try may run: it used the same token, and would take
// the lock away.
func (o *obtainer) result(l *Lock, err error) (*Lock, error) {
	if l != nil {
		o.unknown = false
		l.rtt.Store(int64(o.maxRTT))
	}
	return l, err
}

// queueMode says what the next try does with the waiter queue: nothing
// until the call listens for hand-overs, then join, then renew.
func (o *obtainer) queueMode() queueMode {
	switch {
	case o.handed == nil:
		return noQueue
	case o.placed:
		return renewQueue
	default:
		return joinQueue
	}
}

// try sends try number n. An error ends the call; a failure that a later
// try may get past (see failed) gives a result that is not ok, with no
// holder known. While the call listens for a hand-over, a try after the
// first runs detached, and a hand-over that arrives meanwhile is taken at
// once: the lock it gives then ends the call.
func (o *obtainer) try(n int) (obtainRes, *Lock, error) {
	o.prepare(n == 1)
	if o.handed == nil || n == 1 {
		res, err := o.req.path.obtain(o.ctx, o.req)
		return o.tried(res, err, o.req.mode, o.sent, time.Now())
	}
	d := o.detach(func(ctx context.Context, q *obtainReq) (obtainRes, error) {
		return q.path.obtain(ctx, q)
	})
	if l, err := o.await(d); l != nil || err != nil {
		return obtainRes{holder: -1}, l, err
	}
	return o.tried(d.res, d.err, d.mode, d.sent, d.at)
}

// prepare fills the request for the next try: its queue mode, and how
// long a place it asks for.
func (o *obtainer) prepare(first bool) {
	req := o.req
	req.first = first
	req.mode = o.queueMode()
	req.lease, req.placeEnd = 0, 0
	if req.mode != noQueue {
		if end, ok := o.placeEnd(); ok {
			if o.clockKnown {
				req.placeEnd = (end.UnixMicro() + o.clockLo) / 1000
			} else if left := time.Until(end) - o.lastRTT; left <= 0 {
				req.placeEnd = 1 // long past: a plain try (that honours a tombstone)
			} else if left < waiterLease {
				// The server's clock is not known yet: a place that
				// lives from when the try reaches Redis, which may take
				// its whole round trip.
				req.lease = left
			}
		}
	}
	o.queued = o.queued || req.mode != noQueue
	o.tries++
	o.sent = time.Now()
}

// tried files what a try in mode, sent at sent, found, answered at at.
func (o *obtainer) tried(res obtainRes, err error, mode queueMode, sent, at time.Time) (obtainRes, *Lock, error) {
	if err != nil {
		return obtainRes{holder: -1}, nil, o.failed(err)
	}
	o.failing = 0
	o.lastRTT = at.Sub(sent)
	o.maxRTT = max(o.maxRTT, o.lastRTT)
	if o.tries > 1 {
		o.queuedRTT = max(o.queuedRTT, o.lastRTT)
	}
	if !res.ok {
		o.seen = true // an answer: another owner holds it
	}
	if res.serverTime != 0 {
		// The server ran the try between its sending and its reply.
		lo := res.serverTime - sent.UnixMicro() - o.lastRTT.Microseconds()
		if !o.clockKnown || lo > o.clockLo {
			o.clockLo, o.clockKnown = lo, true
		}
		o.syncSent, o.syncServer, o.syncKnown = sent, res.serverTime, true
	}
	switch {
	case res.ok:
		o.placed, o.queued = false, false // the script took us out of the queue
	case res.queued:
		o.placed = true
	case res.lapsed:
		o.placed = false
	case mode != noQueue:
		// Taken and not queued: past the end of the place we asked for.
		o.placed = false
	}
	return res, nil, nil
}

// detached is a call to Redis that an Obtain listening for a hand-over
// makes in a goroutine of its own: a try (a renewal of its place, say) or
// the confirmation of a hand-over. The call does not wait for a try
// before it takes a hand-over that arrives meanwhile, and the call's end
// does not cut a detached call at once: cutting a command on the wire
// costs its connection (go-redis and redigo close it), and the clean-up
// that follows (leaving the queue, or passing the lock on) would need a
// new one, several round trips on a slow link, while a lock waits for it.
// A detached call gets detachGrace after the call's end; Close cuts it at
// once, and waits for it (it is a clean-up).
type detached struct {
	done chan struct{} // closed once the call returned
	sent time.Time     // when it was sent
	mode queueMode     // the try's
	res  obtainRes     // set before done is closed
	err  error
	at   time.Time // when it returned

	mu       sync.Mutex
	finished bool
	grace    *time.Timer // started at the call's end
}

// detachGrace is how long a detached call may go on after the Obtain that
// made it ended, given the call's longest round trip.
func detachGrace(rtt time.Duration) time.Duration {
	return max(cleanupAttempt, 2*rtt)
}

// detach runs fn in a goroutine, on a copy of the request, and returns at
// once. The call's clean-up waits for it (see done).
func (o *obtainer) detach(fn func(context.Context, *obtainReq) (obtainRes, error)) *detached {
	c, q := o.c, *o.req
	q.rtt = o.maxRTT
	d := &detached{done: make(chan struct{}), sent: o.sent, mode: o.req.mode}
	ctx, cancel := context.WithCancel(context.WithoutCancel(o.ctx))
	grace := detachGrace(o.maxRTT)
	stopEnd := context.AfterFunc(o.ctx, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if !d.finished {
			d.grace = time.AfterFunc(grace, cancel)
		}
	})
	stopClose := context.AfterFunc(c.life, cancel)
	c.cleanups.goFunc(func() {
		res, err := fn(ctx, &q)
		at := time.Now()
		stopEnd()
		stopClose()
		d.mu.Lock()
		d.finished = true
		if d.grace != nil {
			d.grace.Stop()
		}
		d.res, d.err, d.at = res, err, at
		d.mu.Unlock()
		cancel()
		close(d.done)
	})
	return d
}

// placeEnd is when the call's place in the queue ends at the latest, in
// local time: a release that hands it the lock then still reaches it, and
// its confirmation is answered, before the call's deadline (the
// announcement's one way and the confirmation's round trip), with room for
// jitter: two of the longest round trips the call has seen since its
// first try. A place that outlived it would draw hand-overs that the call
// cannot take in time, and the lock would wait for the call's clean-up,
// or for the claim to end. Without a deadline, none. Past it, the call's
// tries are plain ones: they take the lock if it is free and nobody live
// queues ahead.
func (o *obtainer) placeEnd() (time.Time, bool) {
	d, ok := o.ctx.Deadline()
	if !ok {
		return time.Time{}, false
	}
	rtt := o.queuedRTT
	if rtt == 0 {
		rtt = o.maxRTT
	}
	return d.Add(-2 * rtt), true
}

// await waits for the detached try d, taking any hand-over that arrives
// meanwhile. It returns the lock so obtained, or the error that ends the
// call, or nil, nil once d has returned.
func (o *obtainer) await(d *detached) (*Lock, error) {
	o.pending = d
	for {
		select {
		case <-d.done:
			o.pending = nil
			return nil, nil
		case payload := <-o.handed:
			if l, err := o.takeOver(payload); l != nil || err != nil {
				return l, err
			}
		case <-o.ctx.Done():
			return nil, o.notObtained(o.ctx.Err())
		case <-o.c.life.Done():
			return nil, errorf("relock: obtain %q: %w", o.req.key, ErrClosed)
		}
	}
}

// failed files the error of a try (or of giving back a lock dead on
// arrival) and returns the error that ends the call, or nil when the call
// goes on: the try got no answer, or a refusal for now (see classify).
// The clean-up of an unknown outcome waits for the call's end (done):
// the next try uses the same token, which a clean-up must not undo.
func (o *obtainer) failed(err error) error {
	f := classify(err)
	o.unknown = o.unknown || f.written
	if o.c.closed.Load() {
		// Close closed the connection under a try (it does not wait for
		// a first try on the wire).
		return errorf("relock: obtain %q: %w: %w", o.req.key, ErrClosed, err)
	}
	if cerr := contextEnded(o.ctx, err); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) {
			o.lastErr = err // no answer before the deadline
		}
		return o.notObtained(cerr)
	}
	if !f.transient {
		return opError("obtain", o.req.key, err)
	}
	o.lastErr = err
	o.failing++
	return nil
}

// notObtained is the error of a call that ended without the lock: cause is
// the error of the context, or of the budget's deadline, that ended it, or
// nil when the retry strategy or the wait budget ran out. It matches
// ErrNotObtained when a try found the lock held, and ErrUnavailable when
// none did but some failed for want of Redis.
func (o *obtainer) notObtained(cause error) error {
	if errors.Is(context.Cause(o.ctx), ErrClosed) {
		return errorf("relock: obtain %q: %w", o.req.key, ErrClosed)
	}
	key := o.req.key
	budget := cause == nil && !o.budgetEnd.IsZero() && !time.Now().Before(o.budgetEnd)
	if !o.budgetEnd.IsZero() && errors.Is(cause, context.DeadlineExceeded) && o.ctx.Err() != nil && time.Now().After(o.budgetEnd) {
		if d, ok := o.ctx.Deadline(); ok && d.Equal(o.budgetEnd.Add(lastTryGrace)) {
			// Our own budget's deadline, not the caller's.
			cause, budget = nil, true
		}
	}
	if !o.seen && o.lastErr != nil {
		switch {
		case budget:
			return errorf("relock: obtain %q: %w: no answer showing a holder within %v (tries: %d); last error: %w", key, ErrUnavailable, o.st.maxWait, o.tries, o.lastErr)
		case cause != nil:
			return errorf("relock: obtain %q: %w: %w (tries: %d); last error: %w", key, ErrUnavailable, cause, o.tries, o.lastErr)
		default:
			return errorf("relock: obtain %q: %w (tries: %d); last error: %w", key, ErrUnavailable, o.tries, o.lastErr)
		}
	}
	var last string
	if o.failing > 0 {
		// Taken before; the last tries failed. Not ErrUnavailable: a holder
		// was seen, and "taken" is the answer.
		last = fmt.Sprintf(" (then failed tries: %d; last error: %v)", o.failing, o.lastErr)
	}
	switch {
	case budget:
		return errorf("relock: obtain %q: %w%s: waited %v%s", key, ErrNotObtained, o.holderInfo(), o.st.maxWait, last)
	case cause != nil:
		return errorf("relock: obtain %q: %w: %w%s", key, ErrNotObtained, cause, last)
	default:
		return errorf("relock: obtain %q: %w%s%s", key, ErrNotObtained, o.holderInfo(), last)
	}
}

// holderInquiry bounds the one read that names the holder in the error of
// an Obtain that ran out of tries or budget.
const holderInquiry = 50 * time.Millisecond

// holderInfo names who holds the lock, for the error of an Obtain that
// found it taken and ran out of tries or budget: ` (held by "metadata",
// 2.1s left)`, or "another owner" without metadata (the token is not
// shown: Inspect gives it), from one read of the key bounded by
// holderInquiry; "" when that read fails or finds the key gone or ours.
// Not done when a context ended the call: the caller gave up, and waits
// for nothing more.
func (o *obtainer) holderInfo() string {
	if o.ctx.Err() != nil {
		return "" // the call's own deadline (the budget's) has come
	}
	// Within the call's context: Obtain still returns by the budget plus
	// lastTryGrace, and by the caller's deadline.
	ctx, cancel := context.WithTimeout(o.ctx, holderInquiry)
	defer cancel()
	st, err := o.req.path.inspect(ctx, o.req.keys)
	if err != nil || !st.exists {
		return ""
	}
	token, meta, _ := strings.Cut(st.value, "|")
	if token == o.req.token {
		return ""
	}
	if len(meta) > 64 {
		meta = strings.ToValidUTF8(meta[:64], "") + "..."
	}
	var b strings.Builder
	if meta != "" {
		fmt.Fprintf(&b, " (held by %q", meta)
	} else {
		b.WriteString(" (held by another owner")
	}
	if d := asDuration(st.pttl); d >= 0 {
		fmt.Fprintf(&b, ", %v left)", d.Round(time.Millisecond))
	} else {
		b.WriteString(", no expiry)")
	}
	return b.String()
}

// won turns a try that found the key ours into a Lock. It returns nil, nil
// when the lock is already past its validity: it has been given back (or
// handed on), and the call goes on.
func (o *obtainer) won(res obtainRes) (*Lock, error) {
	req := o.req
	if w := req.wait; w != nil && res.acked < w.n {
		o.c.cleanUp(req, false, nil)
		return nil, errorf("relock: obtain %q: %w: %d of %d within %v; released", req.key, ErrTooFewReplicas, res.acked, w.n, w.timeout)
	}
	at := o.sent
	if res.leftKnown && res.left < req.ttl {
		// The key was set before this try: count its lifetime from what
		// is left of it.
		at = o.sent.Add(res.left - req.ttl)
	}
	return o.accept(at, res.fence)
}

// accept makes the Lock for a key that became ours no earlier than at,
// unless its validity has already ended: then the key is given back, and
// accept returns nil, nil (or the error that ended the call).
func (o *obtainer) accept(at time.Time, fence int64) (*Lock, error) {
	req := o.req
	if !time.Now().Before(at.Add(req.ttl - drift(req.ttl))) {
		// Dead on arrival. Give it back now, not in the background: the
		// next try uses the same token, and a late release must not undo
		// it.
		if _, err := req.path.release(o.ctx, req.keys, req.token, false); err != nil {
			// The key may still hold our token: the next try finds it
			// ours, or the clean-up at the end deletes it.
			return nil, o.failed(err)
		}
		return nil, nil
	}
	return o.c.newLock(o.lock, fence, at, o.st)
}

// nextWait returns how long to wait before try n+1, or the error that ends
// the call.
func (o *obtainer) nextWait(n int, res obtainRes) (time.Duration, error) {
	st := o.st
	wait, more := st.retry.Backoff(n)
	if !more {
		return 0, o.notObtained(nil)
	}
	wait = max(wait, minRetryWait)
	if o.failing > 0 {
		// No answer, or a refusal: back off, whatever the strategy says.
		wait = max(wait, outageBackoff(o.failing))
	} else if listening := o.notify && o.handed == nil && o.register(); o.handed != nil {
		// A release wakes us. A waking strategy (DefaultRetry) then
		// polls only to renew our place in the queue; any strategy
		// renews at least that often.
		if wakes(st.retry) {
			wait = waiterRenew
		}
		wait = min(wait, waiterRenew)
		if listening || res.lapsed {
			wait = 0 // now listening, or our place lapsed: join at once
		}
	}
	if res.holder >= 0 {
		// The holder's key is gone res.holder after the try ran, which
		// was about half its round trip ago; the next try reaches Redis
		// about half a round trip after it is sent. Aim it at the
		// expiry: on a slow link, waiting the whole PTTL arrives a round
		// trip late. A try that arrives early finds a PTTL of a few
		// milliseconds and comes again.
		wait = min(wait, res.holder-o.lastRTT)
	}
	if !o.budgetEnd.IsZero() {
		left := time.Until(o.budgetEnd)
		if left <= 0 {
			return 0, o.notObtained(nil)
		}
		wait = min(wait, left)
	}
	return wait, nil
}

// Pauses after tries that got no answer or a refusal: about outagePause
// after the first, doubling up to outagePauseMax, each drawn from the
// upper half of its range so that clients that failed together do not
// come back together.
const (
	outagePause    = 10 * time.Millisecond
	outagePauseMax = 500 * time.Millisecond
)

// outageBackoff is the shortest pause after the n-th failed try in a row.
func outageBackoff(n int) time.Duration {
	d := outagePauseMax
	if n <= 10 {
		d = min(outagePause<<(n-1), outagePauseMax)
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// sleep waits for wait, a hand-over, or the end of the call. It returns a
// lock handed over meanwhile.
func (o *obtainer) sleep(wait time.Duration) (*Lock, error) {
	if wait <= 0 {
		if err := o.ctx.Err(); err != nil {
			return nil, o.notObtained(err)
		}
		return nil, nil
	}
	if o.timer == nil {
		o.timer = time.NewTimer(wait)
	} else {
		o.timer.Reset(wait)
	}
	select {
	case <-o.ctx.Done():
		return nil, o.notObtained(o.ctx.Err())
	case <-o.c.life.Done():
		return nil, errorf("relock: obtain %q: %w", o.req.key, ErrClosed)
	case payload := <-o.handed:
		return o.takeOver(payload)
	case <-o.timer.C:
		return nil, nil
	}
}

// contextEnded returns ctx's error if err came from ctx ending: ctx says
// so, or err is a context error and ctx's deadline has come (a client may
// time out on the deadline a moment before ctx's own timer fires).
func contextEnded(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if d, ok := ctx.Deadline(); ok && errors.Is(err, context.DeadlineExceeded) && !time.Now().Before(d.Add(-time.Millisecond)) {
		return context.DeadlineExceeded
	}
	return nil
}

// register joins the notifier for the lock's channel; false means this
// call polls instead.
func (o *obtainer) register() bool {
	ch, err := o.c.notifier.join(o.ctx, o.req.token, o.req.keys.channel)
	if err != nil {
		o.notify = false
		return false
	}
	o.handed = ch
	return true
}

// takeOver builds the lock a release handed to us; nil, nil when the
// announcement cannot be used (the next poll finds the lock ours), the
// claim ran out before we confirmed it (the next try queues again), or the
// lock is already past its validity (given back).
//
// A hand-over sets the key to our token for a short claim only (see
// handoverClaim): we confirm it by setting its expiry to our TTL, and the
// lock's validity counts from that confirming write. A renewal already on
// the wire that reached Redis after the hand-over confirms it too:
// whichever answers first with the key ours gives the lock.
func (o *obtainer) takeOver(payload string) (*Lock, error) {
	// (The try that queued us may not have answered yet: the release
	// found our place, so it reached Redis.)
	h, ok := parseHandover(payload)
	if !ok {
		return nil, nil
	}
	req := o.req
	o.placed, o.queued = false, false // the release took us out of the queue
	// The key holds our claim: should the call end before it is
	// confirmed, the call's clean-up gives it back (to the next waiter).
	unknown := o.unknown
	o.unknown = true
	if l, err, early := o.takeOverEarly(h); early {
		return o.handedLock(l, err, unknown)
	}
	// Detached, like a try: a confirmation that the call's end cut would
	// cost its connection, which the clean-up then needs. The refresh
	// script writes only a key that holds our token: one that arrives
	// late, after the lock was released, writes nothing.
	at := time.Now()
	d := o.detach(func(ctx context.Context, q *obtainReq) (obtainRes, error) {
		ok, _, err := q.path.refresh(ctx, q.keys, q.token, q.ttl, nil)
		return obtainRes{ok: ok}, err
	})
	o.confirming = d
	var renewal <-chan struct{}
	p := o.pending
	if p != nil {
		renewal = p.done
	}
	for {
		select {
		case <-d.done:
			o.confirming = nil
			if d.err != nil {
				// The claim may be ours still: the next try finds it so
				// (and confirms it), or the call's clean-up gives it
				// back. No clean-up now: the next try uses the same token.
				return nil, o.failed(d.err)
			}
			if !d.res.ok {
				o.unknown = unknown
				return nil, nil // the claim ran out first
			}
			l, err := o.accept(at, h.fence)
			return o.handedLock(l, err, unknown)
		case <-renewal:
			renewal = nil
			if p.err != nil || !p.res.ok {
				continue // it ran before the hand-over: the confirmation tells
			}
			o.pending = nil
			res, _, err := o.tried(p.res, nil, p.mode, p.sent, p.at)
			if err != nil {
				return nil, err
			}
			l, err := o.won(res)
			return o.handedLock(l, err, unknown)
		case <-o.ctx.Done():
			return nil, o.notObtained(o.ctx.Err())
		case <-o.c.life.Done():
			return nil, errorf("relock: obtain %q: %w", req.key, ErrClosed)
		}
	}
}

// earlyMargin is how much of a hand-over's claim must be left, beyond two of
// the call's longest round trips, for takeOverEarly to give the lock before
// its confirmation answers.
const earlyMargin = 20 * time.Millisecond

// claimHolds returns until when, in local time, a key whose expiry is
// expiry (the server's clock, in microseconds) surely holds, given a try
// sent at sent whose reply told the server's clock, server: the server ran
// that try after it was sent, so at sent its clock read at most server,
// and reaches expiry no earlier than sent + (expiry - server) by our clock,
// less the drift margin for that span. ok is false when expiry is not
// later than server.
func claimHolds(sent time.Time, server, expiry int64) (time.Time, bool) {
	span := time.Duration(expiry-server) * time.Microsecond
	if span <= 0 {
		return time.Time{}, false
	}
	return sent.Add(span - drift(span)), true
}

// takeOverEarly gives the lock that hand-over h announced at once, before
// its confirmation answers, when the announcement tells when the claim
// expires and enough of it is left; nil when it does not (the caller then
// waits for the confirmation). The release script sets the claim's expiry
// to an absolute time and announces that time (release.lua), so the
// lock's validity is the claim's, mapped to our clock by the last try
// that told the server's (claimHolds): never later than Redis keeps the
// key. The confirmation, which sets the key's expiry to our TTL, goes on
// in the background holding the lock's writes, so that no Refresh passes
// it; its answer extends the validity (Lock.confirmed). On a slow link
// this saves the hand-over a round trip (issue 19.3). Releases of earlier
// versions announce the time of the hand-over instead, an expiry already
// past: their hand-overs are confirmed first, as before. early is false
// when the caller is to confirm first.
func (o *obtainer) takeOverEarly(h handover) (_ *Lock, _ error, early bool) {
	req, c := o.req, o.c
	if req.wait != nil || !o.syncKnown {
		return nil, nil, false // WithReplicas: the confirmation's answer is needed
	}
	until, ok := claimHolds(o.syncSent, o.syncServer, h.serverTime)
	if !ok || time.Until(until) < 2*o.maxRTT+earlyMargin {
		return nil, nil, false
	}
	if !c.cleanups.start(1) {
		return nil, nil, false // closing
	}
	at := time.Now()
	l := o.lock
	l.validUntil = until
	l.confirming = make(chan struct{})
	if o.st.observer != nil {
		l.ready = make(chan struct{}) // no loss reported before EventObtained
	}
	l.writes.Lock()
	octx := o.ctx // not o, which would then escape to the heap
	confirm := func() {
		defer c.cleanups.done()
		defer close(l.confirming)
		defer l.writes.Unlock()
		// Bounded by the claim: past it, the lock has ended anyway.
		ctx, cancel := context.WithDeadline(context.WithoutCancel(octx), until)
		stop := context.AfterFunc(c.life, cancel)
		ok, _, err := l.req.path.refresh(ctx, l.req.keys, l.req.token, l.req.ttl, nil)
		stop()
		cancel()
		if l.ready != nil {
			<-l.ready
		}
		l.confirmed(at, ok, err)
	}
	nl, err := c.newLock(l, h.fence, at, o.st)
	if err != nil && l.ready != nil {
		close(l.ready) // no Lock for Obtain to close it
	}
	go confirm()
	return nl, err, true
}

// handedLock finishes takeOver with what accepting the lock gave: the lock,
// or nothing (given back: unknown is what the call knew before), or the
// error that ends the call.
func (o *obtainer) handedLock(l *Lock, err error, unknown bool) (*Lock, error) {
	if l != nil {
		o.handedOver = true
	} else if err == nil {
		o.unknown = unknown // given back
	}
	return l, err
}

// done leaves the queue, if a try may have put us there, and the notifier,
// and, for a call that failed after a try of unknown outcome, deletes the
// key if that try left our token in it.
func (o *obtainer) done(won bool) {
	if o.timer != nil {
		o.timer.Stop()
	}
	if o.queued || o.unknown {
		o.req.rtt = o.maxRTT
		// After the calls still on the wire: the clean-up then undoes
		// what they did too (a try that took the lock or queued us), and
		// goes out on the connection they free rather than a new one
		// (go-redis needs several round trips to open one).
		var after []*detached
		if !won {
			for _, d := range []*detached{o.pending, o.confirming} {
				if d != nil {
					after = append(after, d)
				}
			}
		}
		o.c.cleanUpAfter(o.req, o.queued, after, o.unknown && !won)
	}
	if o.handed != nil {
		o.c.notifier.leave(o.req.token, o.req.keys.channel)
	}
}

// checkSettings validates the options of one Obtain and fills req from
// them.
func (c *Client) checkSettings(st *settings, req *obtainReq) error {
	if err := c.validate(st, req.path); err != nil {
		return err
	}
	if st.prefixGiven {
		return invalid("WithKeyPrefix is a Client setting: give it to New, Open or NewQuorum, not to Obtain or Do")
	}
	req.wait = st.replicas
	if st.fencing {
		if req.keys.fence == "" {
			return invalid("key %q contains '}' but no hash tag, so its fencing counter cannot share its hash slot; use a tag like {name}", req.key)
		}
		req.fenced = true
	}
	return nil
}

// validate checks settings that do not depend on the key: New checks the
// Client's defaults with it, Obtain each call's.
func (c *Client) validate(st *settings, p path) error {
	if st.maxWait < 0 {
		return invalid("negative wait budget %v", st.maxWait)
	}
	if st.minHold < 0 {
		return invalid("negative minimum hold %v", st.minHold)
	}
	if len(st.metadata) > MaxMetadataLen {
		return invalid("metadata of %d bytes is longer than %d", len(st.metadata), MaxMetadataLen)
	}
	if w := st.replicas; w != nil {
		if w.n < 1 || w.timeout < time.Millisecond {
			return invalid("WithReplicas(%d, %v): want at least 1 replica and 1ms", w.n, w.timeout)
		}
		if !p.canWait() {
			return errorf("relock: %w: WithReplicas needs a single master whose driver implements driver.ReplicaWaiter and driver.Scripter", ErrUnsupported)
		}
	}
	if st.fencing && !p.canFence() {
		return errorf("relock: %w: WithFencing on a quorum of masters", ErrUnsupported)
	}
	return nil
}

// TryObtain tries once to take the lock and never waits: it is Obtain with
// NoRetry, after opts (WithMetadata, WithFencing, WithAutoRefresh,
// WithObserver, ...), so a WithRetry or WithMaxWait among them has no
// effect. A taken lock gives ErrNotObtained; Redis down or refusing,
// ErrUnavailable.
func (c *Client) TryObtain(ctx context.Context, key string, ttl time.Duration, opts ...Option) (*Lock, error) {
	if len(opts) == 0 {
		return c.Obtain(ctx, key, ttl, tryOnce...)
	}
	all := make([]Option, 0, len(opts)+1)
	return c.Obtain(ctx, key, ttl, append(append(all, opts...), tryOnce...)...)
}

// tryOnce is TryObtain's option, made once: no retry, no wait budget.
var tryOnce = []Option{optionFunc(func(st *settings) { st.retry, st.maxWait = NoRetry(), 0 })}

// Ping checks that Redis answers, with one round trip per connection (a
// GET of a key that no lock can have, under the Client's prefix so that an
// ACL user confined to it may run it), as database/sql's PingContext does:
// Open does not connect, so a readiness probe calls Ping. It returns nil
// when every connection answered (a quorum pings each master), an error
// matching ErrUnavailable when one did not answer by ctx's deadline or
// refused for now, ErrNoPermission when the user may not read the key or
// could not authenticate, and ErrClosed after Close.
func (c *Client) Ping(ctx context.Context) error {
	if c == nil {
		return invalid("nil client")
	}
	if ctx == nil {
		return invalid("nil context")
	}
	if c.closed.Load() {
		return errorf("relock: ping: %w", ErrClosed)
	}
	key := c.defaults.prefix + "ping" + reservedMark + "ping"
	for i, conn := range c.conns {
		if _, _, err := conn.Get(ctx, key); err != nil {
			where := ""
			if len(c.conns) > 1 {
				where = fmt.Sprintf(" (connection %d of %d)", i+1, len(c.conns))
			}
			if s := classify(err).sentinel; s != nil && !errors.Is(err, s) {
				return errorf("relock: ping%s: %w: %w", where, s, err)
			}
			return errorf("relock: ping%s: %w", where, err)
		}
	}
	return nil
}

// Clean-up bounds: the first attempt takes at most cleanupAttempt, each
// next one twice as long as the one before (a slow link may need a dial,
// the handshake and the script, several round trips, on a connection that
// the failed try closed); attempts go on, backing off, for the lock's TTL
// (after which Redis drops the key) but at least the waiter lease and at
// most cleanupFor.
const (
	cleanupAttempt = 250 * time.Millisecond
	cleanupFor     = 5 * time.Second
	lastCleanup    = 2 * cleanupAttempt // Close's last attempt, at most
)

// cleanUp deletes the key, or hands it on, if a try left our token in it,
// and with leave takes us out of the waiter queue for good. It runs in the
// background, tried again until it succeeds or its time is up, so that no
// caller waits for it; Close waits for it, cutting it to one last attempt.
// A try that failed with WRONGTYPE, NOPERM or a refusal, or that the
// driver could not serve, wrote nothing; a clean-up that meets a permanent
// refusal stops.
func (c *Client) cleanUp(req *obtainReq, leave bool, cause error) {
	if cause != nil && !classify(cause).written {
		return // nothing was written
	}
	c.cleanUpAfter(req, leave, nil, cause != nil)
}

// cleanUpAfter is cleanUp once the detached calls after have returned
// (they end by their grace, or at once when Close cuts them). unknown
// says that a call's outcome is unknown: it may still reach Redis, so the
// clean-up releases once more at its end (see below).
func (c *Client) cleanUpAfter(req *obtainReq, leave bool, after []*detached, unknown bool) {
	keys, token, p := req.keys, req.token, req.path
	// The first attempt has time for a new connection's dial and
	// handshake and the script at the round trips the tries saw.
	first := max(cleanupAttempt, 4*req.rtt)
	lasts := max(waiterLease, min(req.ttl, cleanupFor), 2*first)
	c.cleanups.goFunc(func() {
		cut := unknown // a call was cut: it may reach Redis later
		for _, d := range after {
			<-d.done
			cut = cut || d.err != nil
		}
		until := time.Now().Add(lasts)
		pause, attempt := 10*time.Millisecond, first
		for {
			d := min(attempt, max(time.Until(until), 10*time.Millisecond))
			if attempt == 0 {
				// The last attempt (Close's, or the second pass after a
				// cut call): as long as a first one, up to
				// lastCleanup, so that a server paused for a moment still
				// answers it (10 ms left a hand-over's claim in the key
				// after Close: issue 19.4). A claim lasts handoverClaim at
				// most, so one this attempt cannot delete has expired by
				// its end; a token a try wrote with its TTL, and whose
				// reply was lost, stays until that TTL.
				d = min(first, lastCleanup)
			}
			ctx, cancel := context.WithTimeout(context.Background(), d)
			attempt *= 2
			_, err := p.release(ctx, keys, token, leave)
			cancel()
			if err == nil && cut {
				// A call cut at the call's end may reach Redis after this
				// release: a driver may send it on after its caller left
				// (the go-redis adapter's worker does), and a plain try
				// then takes a free key. Release once more when the
				// clean-up's time is up, or at Close (issue 19.4: the
				// lifecycle model found our token in the key after every
				// Client had closed).
				cut = false
				t := time.NewTimer(time.Until(until))
				select {
				case <-t.C:
				case <-c.life.Done():
				}
				t.Stop()
				until, attempt = time.Now(), 0
				continue
			}
			if err == nil || classify(err).permanent() || !time.Now().Before(until) {
				return
			}
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-c.life.Done():
				t.Stop()
				until, attempt = time.Now(), 0 // Close: one last attempt
			}
			pause = min(2*pause, 200*time.Millisecond)
		}
	})
}

func checkKey(key string) error {
	switch {
	case key == "":
		return invalid("empty key")
	case len(key) > MaxKeyLen:
		return invalid("key of %d bytes is longer than %d", len(key), MaxKeyLen)
	case reserved(key):
		return invalid("key %q contains %q, reserved for relock's own keys", key, reservedMark)
	}
	return nil
}

func checkTTL(ttl time.Duration) error {
	if ttl < MinTTL || ttl > MaxTTL {
		return invalid("TTL %v outside [%v, %v]", ttl, MinTTL, MaxTTL)
	}
	return nil
}
