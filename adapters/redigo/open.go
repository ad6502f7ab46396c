package redigo

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

// Driver opens Conns from redis://, rediss:// and unix:// URLs. The
// package registers it with relock under the name "redigo".
type Driver struct{}

var _ driver.Driver = Driver{}

func init() { relock.Register("redigo", Driver{}) }

// Open builds a *redis.Pool from dsn and returns a Conn that owns it: the
// Conn's Close closes the pool. dsn has the form
//
//	redis://[[user]:password@]host[:port][/db][?option=value...]
//	unix://[[user]:password@]/path/to/socket[?db=N&option=value...]
//
// or rediss:// for TLS. The options are db, dial_timeout (5s, TCP connect
// and TLS handshake), read_timeout (10s), write_timeout (10s),
// client_name, pool_size (the most connections, 0: no limit; max_active
// is its old name), max_idle (10 per CPU) and idle_timeout (5m); durations
// as time.ParseDuration takes them. Any other option is an error, as are
// the cluster and sentinel forms (addr=, master_name=): redigo has no
// client for them. A context's deadline bounds every call; the read
// timeout applies only when the context allows longer.
//
// Open does not connect: an unreachable server, a bad password or a TLS
// mismatch show on the first call. A password given to a server that has
// none is accepted. Every error of Open matches relock.ErrInvalidArgument.
func (Driver) Open(dsn string) (driver.Conn, error) {
	pool, err := openPool(dsn)
	if err != nil {
		return nil, fmt.Errorf("relock/redigo: invalid DSN: %w: %w", relock.ErrInvalidArgument, err)
	}
	return &Conn{pool: pool, owned: pool}, nil
}

func openPool(dsn string) (*redis.Pool, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, errors.Unwrap(err) // the url.Error repeats the URL, password included
	}
	network, addr := "tcp", u.Host
	switch {
	case u.Scheme == "unix" && u.Opaque == "" && u.Path != "":
		network, addr = "unix", u.Path
	case (u.Scheme == "redis" || u.Scheme == "rediss") && u.Opaque == "" && u.Host != "":
		if _, _, err := net.SplitHostPort(addr); err != nil {
			addr = net.JoinHostPort(u.Hostname(), "6379")
		}
	default:
		return nil, errors.New("want redis://host[:port][/db], rediss://... or unix:///path/to/socket")
	}
	pool := &redis.Pool{MaxIdle: 10 * runtime.GOMAXPROCS(0), IdleTimeout: 5 * time.Minute}
	var db int
	if p := strings.TrimPrefix(u.Path, "/"); p != "" && network == "tcp" {
		if db, err = strconv.Atoi(p); err != nil || db < 0 {
			return nil, fmt.Errorf("database %q: want a number", p)
		}
	}
	dialTimeout, read, write := 5*time.Second, 10*time.Second, 10*time.Second
	q := u.Query()
	if q.Has("pool_size") && q.Has("max_active") {
		return nil, errors.New("pool_size and max_active (its old name) both given")
	}
	counts := map[string]*int{"db": &db, "max_idle": &pool.MaxIdle, "max_active": &pool.MaxActive, "pool_size": &pool.MaxActive}
	durations := map[string]*time.Duration{"dial_timeout": &dialTimeout, "read_timeout": &read, "write_timeout": &write, "idle_timeout": &pool.IdleTimeout}
	for name := range q {
		v := q.Get(name)
		if p := counts[name]; p != nil {
			if *p, err = strconv.Atoi(v); err != nil || *p < 0 {
				return nil, fmt.Errorf("option %s=%q: want a number", name, v)
			}
		} else if p := durations[name]; p != nil {
			if *p, err = time.ParseDuration(v); err != nil || *p < 0 {
				return nil, fmt.Errorf("option %s=%q: want a duration such as 3s", name, v)
			}
		} else if name == "addr" || name == "master_name" || name == "master_set" {
			return nil, fmt.Errorf("option %s: redigo has no cluster or sentinel client", name)
		} else if name != "client_name" {
			return nil, fmt.Errorf("unknown option %s", name)
		}
	}
	opts := []redis.DialOption{redis.DialReadTimeout(read), redis.DialWriteTimeout(write),
		redis.DialDatabase(db), redis.DialClientName(q.Get("client_name")),
		redis.DialContextFunc(dialer(dialTimeout, u))}
	user, password, hasPassword := "", "", false
	if u.User != nil {
		user = u.User.Username()
		if password, hasPassword = u.User.Password(); !hasPassword && user != "" {
			user, password, hasPassword = "", user, true // redis://secret@host, as redis-cli takes it
		}
	}
	pool.DialContext = func(ctx context.Context) (redis.Conn, error) {
		rc, err := redis.DialContext(ctx, network, addr, opts...)
		if err != nil || !hasPassword {
			return rc, err
		}
		args := []any{user, password}
		if user == "" {
			args = args[1:]
		}
		// A server without a password answers a lone one with an error
		// that says so: accepted, as go-redis and rueidis accept it.
		if _, err = redis.DoContext(rc, ctx, "AUTH", args...); err != nil &&
			(user != "" || !strings.Contains(err.Error(), "without any password configured")) {
			_ = rc.Close()
			return nil, err
		}
		return rc, nil
	}
	return pool, nil
}

// dialer connects, and for rediss:// runs the TLS handshake, within the
// context and the dial timeout (redigo bounds its own handshake by a timer
// only).
func dialer(timeout time.Duration, u *url.URL) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		c, err := new(net.Dialer).DialContext(ctx, network, addr)
		if err != nil || u.Scheme != "rediss" {
			return c, err
		}
		tc := tls.Client(c, &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = c.Close()
			return nil, err
		}
		return tc, nil
	}
}
