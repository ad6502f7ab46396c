package redigo

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

// Driver opens Conns from redis:// and rediss:// URLs. The package
// registers it with relock under the name "redigo".
type Driver struct{}

func init() {
	relock.Register("redigo", Driver{})
}

// Settings of the pool Driver.Open builds, each but the idle timeout
// overridable in the URL.
const (
	openDialTimeout  = 5 * time.Second  // dial_timeout: TCP connect and TLS handshake
	openReadTimeout  = 10 * time.Second // read_timeout: per reply, when the context allows longer
	openWriteTimeout = 10 * time.Second // write_timeout
	openIdleTimeout  = 5 * time.Minute  // idle_timeout: an idle connection older than this is closed
)

// openOptions are the query options Driver.Open knows.
var openOptions = []string{"db", "dial_timeout", "read_timeout", "write_timeout", "client_name", "pool_size", "max_idle", "max_active", "idle_timeout"}

// Open builds a *redis.Pool from dsn and returns a Conn that owns it: the
// Conn's Close closes the pool. dsn has the form
//
//	redis://[[user]:password@]host[:port][/db][?option=value...]
//	unix://[[user]:password@]/path/to/socket[?db=N&option=value...]
//
// or rediss:// for TLS. The options are db, dial_timeout (5s),
// read_timeout (10s), write_timeout (10s), client_name, pool_size (the
// most connections, 0: no limit; max_active is its old name), max_idle (10
// per CPU) and idle_timeout (5m); durations as time.ParseDuration takes
// them. Any other option, and the cluster and
// sentinel forms (addr=, master_name=), which redigo has no client for, are
// errors. The read timeout applies only when a call's context allows
// longer: a context's deadline always bounds a call.
//
// Open does not contact the server: an unreachable server, a bad password
// or a TLS mismatch surface on the first call, within that call's context.
// A password given for a server that needs none is accepted, as the other
// drivers accept it (Redis answers AUTH with "no password is set"). Every
// error of Open matches relock.ErrInvalidArgument.
func (Driver) Open(dsn string) (driver.Conn, error) {
	pool, err := openPool(dsn)
	if err != nil {
		return nil, fmt.Errorf("relock/redigo: invalid DSN: %w: %w", relock.ErrInvalidArgument, err)
	}
	return &Conn{pool: pool, owned: pool}, nil
}

// openPool builds the pool of Open.
func openPool(dsn string) (*redis.Pool, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password included
		}
		return nil, err
	}
	network, addr := "tcp", u.Host
	switch u.Scheme {
	case "redis", "rediss":
		if u.Opaque != "" || u.Host == "" {
			return nil, errors.New("want redis://host[:port][/db]")
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			addr = net.JoinHostPort(u.Hostname(), "6379")
		}
	case "unix":
		if u.Opaque != "" || u.Path == "" {
			return nil, errors.New("want unix:///path/to/socket")
		}
		network, addr = "unix", u.Path
	default:
		return nil, fmt.Errorf("scheme %q: want redis, rediss or unix", u.Scheme)
	}
	dialTimeout := openDialTimeout
	dial := []redis.DialOption{
		redis.DialReadTimeout(openReadTimeout),
		redis.DialWriteTimeout(openWriteTimeout),
	}
	pool := &redis.Pool{
		MaxIdle:     10 * runtime.GOMAXPROCS(0),
		IdleTimeout: openIdleTimeout,
	}
	db := 0
	if p := strings.TrimPrefix(u.Path, "/"); p != "" && network == "tcp" {
		if db, err = strconv.Atoi(p); err != nil || db < 0 {
			return nil, fmt.Errorf("database %q: want a number", p)
		}
	}
	q := u.Query()
	if q.Has("pool_size") && q.Has("max_active") {
		return nil, errors.New("pool_size and max_active (its old name) both given")
	}
	for name := range q {
		if !slices.Contains(openOptions, name) {
			if name == "addr" || name == "master_name" || name == "master_set" {
				return nil, fmt.Errorf("option %s: redigo has no cluster or sentinel client", name)
			}
			return nil, fmt.Errorf("unknown option %s (known: %s)", name, strings.Join(openOptions, ", "))
		}
	}
	duration := func(name string, set func(time.Duration)) error {
		if !q.Has(name) {
			return nil
		}
		d, err := time.ParseDuration(q.Get(name))
		if err != nil || d < 0 {
			return fmt.Errorf("option %s=%q: want a duration such as 3s", name, q.Get(name))
		}
		set(d)
		return nil
	}
	count := func(name string, set func(int)) error {
		if !q.Has(name) {
			return nil
		}
		n, err := strconv.Atoi(q.Get(name))
		if err != nil || n < 0 {
			return fmt.Errorf("option %s=%q: want a number", name, q.Get(name))
		}
		set(n)
		return nil
	}
	for _, err := range []error{
		count("db", func(n int) { db = n }),
		duration("dial_timeout", func(d time.Duration) { dialTimeout = d }),
		duration("read_timeout", func(d time.Duration) { dial = append(dial, redis.DialReadTimeout(d)) }),
		duration("write_timeout", func(d time.Duration) { dial = append(dial, redis.DialWriteTimeout(d)) }),
		count("max_idle", func(n int) { pool.MaxIdle = n }),
		count("max_active", func(n int) { pool.MaxActive = n }),
		count("pool_size", func(n int) { pool.MaxActive = n }),
		duration("idle_timeout", func(d time.Duration) { pool.IdleTimeout = d }),
	} {
		if err != nil {
			return nil, err
		}
	}
	// The connection, and for rediss:// the TLS handshake, bounded by the
	// context as well as dial_timeout (redigo bounds its own handshake by
	// a timer only).
	tlsHost := ""
	if u.Scheme == "rediss" {
		tlsHost = u.Hostname()
	}
	dial = append(dial, redis.DialContextFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dialTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, dialTimeout)
			defer cancel()
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil || tlsHost == "" {
			return c, err
		}
		tc := tls.Client(c, &tls.Config{ServerName: tlsHost, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = c.Close()
			return nil, err
		}
		return tc, nil
	}))
	if name := q.Get("client_name"); name != "" {
		dial = append(dial, redis.DialClientName(name))
	}
	if db != 0 {
		dial = append(dial, redis.DialDatabase(db))
	}
	user, password, hasPassword := "", "", false
	if u.User != nil {
		user = u.User.Username()
		password, hasPassword = u.User.Password()
		if !hasPassword && user != "" { // redis://secret@host, as redis-cli takes it
			user, password, hasPassword = "", user, true
		}
	}
	pool.DialContext = func(ctx context.Context) (redis.Conn, error) {
		rc, err := redis.DialContext(ctx, network, addr, dial...)
		if err != nil {
			return nil, err
		}
		if hasPassword {
			if err := auth(ctx, rc, user, password); err != nil {
				_ = rc.Close()
				return nil, err
			}
		}
		return rc, nil
	}
	return pool, nil
}

// auth sends AUTH on a new connection. A server without a password answers
// a lone password with an error that says so; that counts as success, as
// it does for go-redis and rueidis, whose HELLO AUTH default <password> the
// default user of such a server accepts.
func auth(ctx context.Context, rc redis.Conn, user, password string) error {
	args := []any{password}
	if user != "" {
		args = []any{user, password}
	}
	_, err := redis.DoContext(rc, ctx, "AUTH", args...)
	if err != nil && user == "" && strings.Contains(err.Error(), "without any password configured") {
		return nil
	}
	return err
}
