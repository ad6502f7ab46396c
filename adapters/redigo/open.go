package redigo

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"runtime"
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
	u := driver.URL{DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	if err := u.Parse(dsn, "max_active", "max_idle", "idle_timeout"); err != nil {
		return nil, err
	} else if len(u.Addrs) > 1 || u.MasterName != "" {
		return nil, errors.New("options addr and master_name: redigo has no cluster or sentinel client")
	} else if u.Has("pool_size") && u.Has("max_active") {
		return nil, errors.New("pool_size and max_active (its old name) both given")
	}
	pool := &redis.Pool{MaxActive: u.PoolSize, MaxIdle: 10 * runtime.GOMAXPROCS(0), IdleTimeout: 5 * time.Minute}
	if err := errors.Join(u.Int("max_active", &pool.MaxActive), u.Int("max_idle", &pool.MaxIdle), u.Duration("idle_timeout", &pool.IdleTimeout)); err != nil {
		return nil, err
	}
	opts := []redis.DialOption{redis.DialReadTimeout(u.ReadTimeout), redis.DialWriteTimeout(u.WriteTimeout),
		redis.DialDatabase(u.DB), redis.DialClientName(u.ClientName), redis.DialContextFunc(dialer(u.DialTimeout, u.TLSConfig()))}
	pool.DialContext = func(ctx context.Context) (redis.Conn, error) {
		rc, err := redis.DialContext(ctx, u.Network, u.Addrs[0], opts...)
		if err != nil || u.Password == "" {
			return rc, err
		}
		args := []any{u.Username, u.Password}
		if u.Username == "" {
			args = args[1:]
		}
		// A server without a password answers a lone one with an error
		// that says so: accepted, as go-redis and rueidis accept it.
		if _, err = redis.DoContext(rc, ctx, "AUTH", args...); err != nil &&
			(u.Username != "" || !strings.Contains(err.Error(), "without any password configured")) {
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
func dialer(timeout time.Duration, tlsConfig *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		c, err := new(net.Dialer).DialContext(ctx, network, addr)
		if err != nil || tlsConfig == nil {
			return c, err
		}
		tc := tls.Client(c, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = c.Close()
			return nil, err
		}
		return tc, nil
	}
}
