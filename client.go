package relock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
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
	conn     driver.Conn
	path     path
	defaults settings
	closed   atomic.Bool
}

// New returns a Client over conn, usually an adapter wrapping a client the
// caller built (goredis.New(rdb), redigo.New(pool), ...). conn must
// implement driver.Scripter or driver.Watcher; when it implements both,
// relock uses scripts.
func New(conn driver.Conn, opts ...Option) (*Client, error) {
	if conn == nil {
		return nil, invalid("nil driver connection")
	}
	c := &Client{conn: conn, defaults: defaultSettings()}
	switch {
	case asScripter(conn) != nil:
		c.path = scriptPath{conn: conn, s: asScripter(conn)}
	case asWatcher(conn) != nil:
		c.path = watchPath{conn: conn, w: asWatcher(conn)}
	default:
		return nil, fmt.Errorf("%w (got %T)", ErrUnsupported, conn)
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c.defaults)
		}
	}
	if c.defaults.maxWait < 0 {
		return nil, invalid("negative wait budget %v", c.defaults.maxWait)
	}
	return c, nil
}

func asScripter(c driver.Conn) driver.Scripter { s, _ := c.(driver.Scripter); return s }
func asWatcher(c driver.Conn) driver.Watcher   { w, _ := c.(driver.Watcher); return w }

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

// Close closes the driver connection. A connection made by an adapter from a
// client the caller built leaves that client open. Locks still held stay
// in Redis until they expire; calls after Close return ErrClosed.
func (c *Client) Close() error {
	if c == nil {
		return invalid("nil client")
	}
	if c.closed.Swap(true) {
		return nil
	}
	return c.conn.Close()
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
	if st.maxWait < 0 {
		return nil, invalid("negative wait budget %v", st.maxWait)
	}
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("relock: obtain %q: %w: %w", key, ErrNotObtained, err)
	}

	start := time.Now()
	var budgetEnd time.Time
	if st.maxWait > 0 {
		budgetEnd = start.Add(st.maxWait)
	}
	token := newToken()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for n := 1; ; n++ {
		tryStart := time.Now()
		ok, holder, err := c.path.obtain(ctx, key, token, ttl)
		if err != nil {
			c.cleanUp(ctx, key, token, ttl, err)
			if ctx.Err() != nil {
				return nil, fmt.Errorf("relock: obtain %q: %w: %w", key, ErrNotObtained, ctx.Err())
			}
			return nil, opError("obtain", key, err)
		}
		if ok {
			return &Lock{client: c, key: key, token: token, obtainedAt: tryStart}, nil
		}

		wait, more := st.retry.Backoff(n)
		if !more {
			return nil, fmt.Errorf("relock: obtain %q: %w", key, ErrNotObtained)
		}
		if holder >= 0 && wait > holder {
			wait = holder // the holder's key is gone by then
		}
		if !budgetEnd.IsZero() {
			left := time.Until(budgetEnd)
			if left <= 0 {
				return nil, fmt.Errorf("relock: obtain %q: %w: waited %v", key, ErrNotObtained, st.maxWait)
			}
			wait = min(wait, left)
		}
		if wait <= 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("relock: obtain %q: %w: %w", key, ErrNotObtained, err)
			}
			continue
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("relock: obtain %q: %w: %w", key, ErrNotObtained, ctx.Err())
		case <-timer.C:
		}
	}
}

// TryObtain tries once to take the lock and never waits: it is Obtain with
// NoRetry. A taken lock gives ErrNotObtained.
func (c *Client) TryObtain(ctx context.Context, key string, ttl time.Duration) (*Lock, error) {
	return c.Obtain(ctx, key, ttl, WithRetry(NoRetry()))
}

// cleanUp deletes key if a failed try left our token in it. A try that
// failed with WRONGTYPE wrote nothing. The clean-up runs even though ctx
// may be over, bounded by the lock's own lifetime (after which Redis drops
// the key anyway) and one second.
func (c *Client) cleanUp(ctx context.Context, key, token string, ttl time.Duration, cause error) {
	if errorsIsWrongType(cause) {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(ttl, time.Second))
	defer cancel()
	_, _ = c.path.release(cctx, key, token)
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
