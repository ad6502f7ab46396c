package goredisv8

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/go-redis/redis/v8"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

// Driver opens go-redis v8 clients from URLs. It is registered with relock
// as "goredisv8"; most programs use it through relock.Open.
type Driver struct{}

// Open builds a go-redis v8 client from dsn and returns a Conn that owns
// it (its Close closes the client). The form of dsn picks the client:
//
//	redis://[user:password@]host:port[/db][?option=value...]    *redis.Client
//	redis://host:port?addr=host2:port2&addr=...                  *redis.ClusterClient
//	redis://sentinel:port?master_name=NAME[&addr=sentinel2:port] failover *redis.Client
//
// rediss:// turns on TLS and unix:///path/to/socket?db=N connects over a
// Unix socket. The options are redis.ParseURL's (db, pool_size,
// dial_timeout, read_timeout, write_timeout, max_retries, ...) and
// client_name, sent with CLIENT SETNAME on every new connection: the
// vocabulary relock's adapters share. Any other option is an error. TLS
// connections are dialled with the call's context.
//
// Open does not contact the server: an unreachable server, a wrong
// password or a TLS mismatch show on the first call, within its context.
// Every error of Open matches relock.ErrInvalidArgument and leaves the
// password out.
func (Driver) Open(dsn string) (driver.Conn, error) {
	rdb, err := openClient(dsn)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password included
		}
		return nil, fmt.Errorf("relock/goredisv8: invalid DSN (want redis://, rediss:// or unix://): %w: %w", relock.ErrInvalidArgument, err)
	}
	return newConn(rdb, true), nil
}

func openClient(dsn string) (redis.UniversalClient, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	addrs, master, name := q["addr"], q.Get("master_name"), q.Get("client_name")
	for _, k := range []string{"addr", "master_name", "client_name"} {
		q.Del(k)
	}
	u.RawQuery = q.Encode()
	o, err := redis.ParseURL(u.String())
	if err != nil {
		return nil, err
	}
	if name != "" {
		o.OnConnect = func(ctx context.Context, cn *redis.Conn) error { return cn.ClientSetName(ctx, name).Err() }
	}
	if o.TLSConfig != nil {
		o.Dialer = tlsDialer(o.DialTimeout, o.TLSConfig)
	}
	switch {
	case master != "":
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: master, SentinelAddrs: append([]string{o.Addr}, addrs...),
			Dialer: o.Dialer, OnConnect: o.OnConnect, Username: o.Username, Password: o.Password, DB: o.DB,
			MaxRetries: o.MaxRetries, MinRetryBackoff: o.MinRetryBackoff, MaxRetryBackoff: o.MaxRetryBackoff,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			PoolFIFO: o.PoolFIFO, PoolSize: o.PoolSize, MinIdleConns: o.MinIdleConns, MaxConnAge: o.MaxConnAge,
			PoolTimeout: o.PoolTimeout, IdleTimeout: o.IdleTimeout, IdleCheckFrequency: o.IdleCheckFrequency, TLSConfig: o.TLSConfig}), nil
	case len(addrs) > 0:
		if o.DB != 0 {
			return nil, errors.New("a Redis Cluster has database 0 only")
		}
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: append([]string{o.Addr}, addrs...),
			Dialer: o.Dialer, OnConnect: o.OnConnect, Username: o.Username, Password: o.Password,
			MaxRetries: o.MaxRetries, MinRetryBackoff: o.MinRetryBackoff, MaxRetryBackoff: o.MaxRetryBackoff,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			PoolFIFO: o.PoolFIFO, PoolSize: o.PoolSize, MinIdleConns: o.MinIdleConns, MaxConnAge: o.MaxConnAge,
			PoolTimeout: o.PoolTimeout, IdleTimeout: o.IdleTimeout, IdleCheckFrequency: o.IdleCheckFrequency, TLSConfig: o.TLSConfig}), nil
	}
	return redis.NewClient(o), nil
}

// tlsDialer dials TLS within the context and the dial timeout (go-redis's
// default: 5 s; negative: none), where go-redis's own dialer ignores the
// context during the handshake.
func tlsDialer(timeout time.Duration, cfg *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: max(timeout, 0), KeepAlive: 5 * time.Minute}, Config: cfg}
	return d.DialContext
}
