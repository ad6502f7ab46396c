package relock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relock-go/relock/driver"
)

// Limits on what Obtain and Refresh accept.
const (
	// MaxKeyLen is the longest key, in bytes, that relock accepts.
	MaxKeyLen = 1024
	// MinTTL is the shortest lock lifetime. TTLs are rounded down to whole
	// milliseconds, the precision of PX.
	MinTTL = time.Millisecond
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

	mu         sync.Mutex      // orders starting a refresher against Close
	life       context.Context // cancelled by Close: auto-refresh stops
	shutdown   context.CancelFunc
	refreshers sync.WaitGroup // the auto-refresh goroutines
	background sync.WaitGroup // a quorum's calls that outlive their vote
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
	if sp, ok := p.(scriptPath); ok {
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
			return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
		}
	}
	return nil
}

// pathFor picks how to run the owner-checked operations over conn: scripts
// where it can, else WATCH/MULTI/EXEC.
func pathFor(conn driver.Conn) (path, error) {
	if s, ok := conn.(driver.Scripter); ok {
		w, _ := conn.(driver.ReplicaWaiter)
		return scriptPath{conn: conn, s: s, w: w}, nil
	}
	if w, ok := conn.(driver.Watcher); ok {
		return watchPath{conn: conn, w: w}, nil
	}
	return nil, fmt.Errorf("%w: %T implements neither driver.Scripter nor driver.Watcher", ErrUnsupported, conn)
}

func newClient(conns []driver.Conn) *Client {
	c := &Client{conns: conns, defaults: defaultSettings()}
	c.life, c.shutdown = context.WithCancel(context.Background())
	return c
}

func (c *Client) applyDefaults(opts []Option) error {
	for _, o := range opts {
		if o != nil {
			o.apply(&c.defaults)
		}
	}
	if c.defaults.maxWait < 0 {
		return invalid("negative wait budget %v", c.defaults.maxWait)
	}
	return nil
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
// over it. dsn is a redis:// or rediss:// URL, parsed by the client
// library's own URL parser. The Client owns the connection: Close closes it.
func Open(driverName, dsn string, opts ...Option) (*Client, error) {
	driversMu.RLock()
	d, ok := drivers[driverName]
	driversMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: unknown driver %q (forgotten import?)", ErrInvalidArgument, driverName)
	}
	conn, err := d.Open(dsn)
	if err != nil {
		return nil, fmt.Errorf("relock: open %s: %w", driverName, err)
	}
	c, err := New(conn, opts...)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return c, nil
}

// Close stops the auto-refresh of the Client's locks (they are lost, with
// ErrClosed, and their goroutines are gone when Close returns) and closes
// the driver connection. A connection made by an adapter from a client the
// caller built leaves that client open. Locks still held stay in Redis
// until they expire; calls after Close return ErrClosed.
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
	c.refreshers.Wait()
	c.background.Wait()
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
// error. A lock reported as not obtained never stays behind with our token:
// if a try fails in a way that leaves its outcome unknown (a timeout, a
// cancelled context, a broken connection), Obtain deletes the key if it
// holds our token before it returns.
func (c *Client) Obtain(ctx context.Context, key string, ttl time.Duration, opts ...Option) (*Lock, error) {
	if c == nil {
		return nil, invalid("nil client")
	}
	if ctx == nil {
		return nil, invalid("nil context")
	}
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
	req := &obtainReq{key: key, keys: keysFor(key), ttl: ttl}
	if err := c.checkSettings(&st, req); err != nil {
		return nil, err
	}
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("relock: obtain %q: %w: %w", key, ErrNotObtained, err)
	}
	req.token = newToken()
	o := obtainer{c: c, ctx: ctx, req: req, st: &st}
	defer o.done()
	return o.run()
}

// obtainer is one Obtain call in progress.
type obtainer struct {
	c   *Client
	ctx context.Context
	req *obtainReq
	st  *settings

	timer  *time.Timer
	notify bool          // this call may wait for a hand-over
	handed <-chan string // set once registered with the notifier
	queued bool          // a try may have put us in the waiter queue
	// A try that queued us ran at local time sent or later, at server time
	// serverAt: the pair maps server times to lower bounds in local time.
	sent     time.Time
	serverAt int64
}

func (o *obtainer) run() (*Lock, error) {
	c, req, st, key := o.c, o.req, o.st, o.req.key
	start := time.Now()
	var budgetEnd time.Time
	if st.maxWait > 0 {
		budgetEnd = start.Add(st.maxWait)
	}
	o.notify = c.notifier != nil && req.keys.queue != "" && req.wait == nil
	if o.notify && c.notifier.subscribed(req.keys.channel) {
		o.register()
	}
	for n := 1; ; n++ {
		req.enqueue = o.handed != nil
		req.first = n == 1
		o.queued = o.queued || req.enqueue
		tryStart := time.Now()
		res, err := c.path.obtain(o.ctx, req)
		if err != nil {
			c.cleanUp(o.ctx, req, err)
			o.queued = false
			if cerr := contextEnded(o.ctx, err); cerr != nil {
				return nil, fmt.Errorf("relock: obtain %q: %w: %w", key, ErrNotObtained, cerr)
			}
			return nil, opError("obtain", key, err)
		}
		if res.ok {
			o.queued = false
			if w := req.wait; w != nil && res.acked < w.n {
				c.cleanUp(o.ctx, req, nil)
				return nil, fmt.Errorf("relock: obtain %q: %w: %d of %d within %v; released", key, ErrTooFewReplicas, res.acked, w.n, w.timeout)
			}
			at := tryStart
			if res.leftKnown && res.left < req.ttl {
				// The key was set before this try: count its lifetime
				// from what is left of it.
				at = tryStart.Add(res.left - req.ttl)
			}
			return c.newLock(req, res.fence, at, st)
		}
		if res.queued {
			o.sent, o.serverAt = tryStart, res.serverTime
		}

		wait, more := st.retry.Backoff(n)
		if !more {
			return nil, fmt.Errorf("relock: obtain %q: %w", key, ErrNotObtained)
		}
		if o.notify && o.handed == nil {
			if o.register() {
				continue // now subscribed: join the queue at once
			}
		}
		if o.handed != nil {
			// A release wakes us. The default strategy then polls only to
			// renew our place in the queue; any strategy stops short of
			// that.
			if _, ok := st.retry.(wakeAware); ok {
				wait = waiterLease / 3
			}
			wait = min(wait, waiterLease/3)
		}
		if res.holder >= 0 && wait > res.holder {
			wait = res.holder // the holder's key is gone by then
		}
		if !budgetEnd.IsZero() {
			left := time.Until(budgetEnd)
			if left <= 0 {
				return nil, fmt.Errorf("relock: obtain %q: %w: waited %v", key, ErrNotObtained, st.maxWait)
			}
			wait = min(wait, left)
		}
		if wait <= 0 {
			if err := o.ctx.Err(); err != nil {
				return nil, fmt.Errorf("relock: obtain %q: %w: %w", key, ErrNotObtained, err)
			}
			continue
		}
		if o.timer == nil {
			o.timer = time.NewTimer(wait)
		} else {
			o.timer.Reset(wait)
		}
		select {
		case <-o.ctx.Done():
			return nil, fmt.Errorf("relock: obtain %q: %w: %w", key, ErrNotObtained, o.ctx.Err())
		case <-c.life.Done():
			return nil, fmt.Errorf("relock: obtain %q: %w", key, ErrClosed)
		case payload := <-o.handed:
			if l, ok := o.takeOver(payload); ok {
				return l, nil
			}
		case <-o.timer.C:
		}
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

// takeOver builds the lock a release handed to us.
func (o *obtainer) takeOver(payload string) (*Lock, bool) {
	h, ok := parseHandover(payload)
	if !ok || o.serverAt == 0 {
		return nil, false // unreadable: the next poll finds the lock ours
	}
	// The release ran (h.serverTime - o.serverAt) after the try that
	// queued us, which ran no earlier than o.sent.
	at := o.sent.Add(time.Duration(h.serverTime-o.serverAt) * time.Microsecond)
	l, err := o.c.newLock(o.req, h.fence, at, o.st)
	if err != nil {
		return nil, false
	}
	o.queued = false
	return l, true
}

// done leaves the queue, if a try may have put us there, and the notifier.
func (o *obtainer) done() {
	if o.timer != nil {
		o.timer.Stop()
	}
	if o.queued {
		o.c.cleanUp(o.ctx, o.req, nil)
	}
	if o.handed != nil {
		o.c.notifier.leave(o.req.token, o.req.keys.channel)
	}
}

// checkSettings validates the options of one Obtain and fills req from them.
func (c *Client) checkSettings(st *settings, req *obtainReq) error {
	if st.maxWait < 0 {
		return invalid("negative wait budget %v", st.maxWait)
	}
	if w := st.replicas; w != nil {
		if w.n < 1 || w.timeout < time.Millisecond {
			return invalid("WithReplicas(%d, %v): want at least 1 replica and 1ms", w.n, w.timeout)
		}
		if !c.path.canWait() {
			return fmt.Errorf("%w: WithReplicas needs a single master whose driver implements driver.ReplicaWaiter and driver.Scripter", ErrUnsupported)
		}
		req.wait = w
	}
	if st.fencing {
		if !c.path.canFence() {
			return fmt.Errorf("%w: WithFencing on a quorum of masters", ErrUnsupported)
		}
		if req.keys.fence == "" {
			return invalid("key %q contains '}' but no hash tag, so its fencing counter cannot share its hash slot; use a tag like {name}", req.key)
		}
		req.fenced = true
	}
	return nil
}

// TryObtain tries once to take the lock and never waits: it is Obtain with
// NoRetry. A taken lock gives ErrNotObtained.
func (c *Client) TryObtain(ctx context.Context, key string, ttl time.Duration) (*Lock, error) {
	return c.Obtain(ctx, key, ttl, WithRetry(NoRetry()))
}

// cleanUp deletes the key, or hands it on, if a failed try left our token
// in it, and takes us out of the waiter queue. A try that failed with
// WRONGTYPE, or that the driver could not serve, wrote nothing. The clean-up runs even though ctx may be over,
// bounded by the lock's own lifetime (after which Redis drops the key
// anyway, but not always the queue entry) and one second.
func (c *Client) cleanUp(ctx context.Context, req *obtainReq, cause error) {
	if errors.Is(cause, driver.ErrWrongType) || errors.Is(cause, errors.ErrUnsupported) {
		return // nothing was written
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(min(req.ttl, time.Second), 100*time.Millisecond))
	defer cancel()
	_, _ = c.path.release(cctx, req.keys, req.token, true)
}

func checkKey(key string) error {
	switch {
	case key == "":
		return invalid("empty key")
	case len(key) > MaxKeyLen:
		return invalid("key of %d bytes is longer than %d", len(key), MaxKeyLen)
	}
	return nil
}

func checkTTL(ttl time.Duration) error {
	if ttl < MinTTL || ttl > MaxTTL {
		return invalid("TTL %v outside [%v, %v]", ttl, MinTTL, MaxTTL)
	}
	return nil
}

// newToken returns 128 random bits in hex.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
