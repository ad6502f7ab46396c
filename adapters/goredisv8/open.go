package goredisv8

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-redis/redis/v8"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

// Driver opens go-redis v8 clients from URLs, for relock.Open.
type Driver struct{}

// Open builds a go-redis v8 client from dsn and returns a Conn that owns
// it (its Close closes the client). The form of dsn picks the client:
//
//	redis://[user:password@]host:port[/db][?option=value...]    *redis.Client
//	redis://host:port?addr=host2:port2&addr=...                  *redis.ClusterClient
//	redis://sentinel:port?master_name=NAME[&addr=sentinel2:port] failover *redis.Client
//
// rediss:// turns on TLS (dialled within the call's context) and
// unix:///path/to/socket?db=N connects over a Unix socket. The options are
// redis.ParseURL's (db, pool_size, dial_timeout, read_timeout,
// write_timeout, max_retries, ...) and client_name (CLIENT SETNAME on
// every connection); any other is an error. Open does not contact the
// server: an unreachable server, a wrong password or a TLS mismatch show
// on the first call, within its context. Every error of Open matches
// relock.ErrInvalidArgument and leaves the password out.
func (Driver) Open(dsn string) (driver.Conn, error) {
	rdb, err := openClient(dsn)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
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
	q.Del("addr")
	q.Del("master_name")
	q.Del("client_name")
	u.RawQuery = q.Encode()
	o, err := redis.ParseURL(u.String())
	if err != nil {
		return nil, err
	}
	if o.TLSConfig != nil { // go-redis's own TLS dial ignores the context
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 5 * time.Minute}, Config: o.TLSConfig}
		if o.DialTimeout != 0 {
			d.NetDialer.Timeout = max(o.DialTimeout, 0)
		}
		o.Dialer = d.DialContext
	}
	uo := &redis.UniversalOptions{Addrs: append([]string{o.Addr}, addrs...), MasterName: master, DB: o.DB,
		Dialer: o.Dialer, OnConnect: setup("", "", 0, name), Username: o.Username, Password: o.Password,
		MaxRetries: o.MaxRetries, MinRetryBackoff: o.MinRetryBackoff, MaxRetryBackoff: o.MaxRetryBackoff,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		PoolFIFO: o.PoolFIFO, PoolSize: o.PoolSize, MinIdleConns: o.MinIdleConns, MaxConnAge: o.MaxConnAge,
		PoolTimeout: o.PoolTimeout, IdleTimeout: o.IdleTimeout, IdleCheckFrequency: o.IdleCheckFrequency, TLSConfig: o.TLSConfig}
	if master != "" { // the sentinels share OnConnect: go-redis logs in
		return redis.NewFailoverClient(uo.Failover()), nil
	}
	// OnConnect logs in, so that a password given to a server without
	// one is accepted, then selects the database: go-redis would fail.
	o.OnConnect = setup(o.Username, o.Password, o.DB, name)
	o.Username, o.Password, o.DB = "", "", 0
	if len(addrs) == 0 {
		return redis.NewClient(o), nil
	}
	if uo.DB != 0 {
		return nil, errors.New("a Redis Cluster has database 0 only")
	}
	co := uo.Cluster()
	co.Username, co.Password, co.OnConnect = "", "", o.OnConnect
	co.ClusterSlots = ClusterSlots(o, co.Addrs...)
	return redis.NewClusterClient(co), nil
}

// setup returns an OnConnect sending the AUTH (a server without password
// accepts any), SELECT and CLIENT SETNAME due.
func setup(user, password string, db int, name string) func(context.Context, *redis.Conn) error {
	if password == "" && db == 0 && name == "" {
		return nil
	}
	return func(ctx context.Context, cn *redis.Conn) error {
		if password != "" {
			auth := cn.Auth(ctx, password)
			if user != "" {
				auth = cn.AuthACL(ctx, user, password)
			}
			if err := auth.Err(); err != nil && !strings.Contains(err.Error(), "without any password configured") && !strings.Contains(err.Error(), "no password is set") {
				return err
			}
		}
		if db != 0 {
			if err := cn.Select(ctx, db).Err(); err != nil {
				return err
			}
		}
		if name != "" {
			return cn.ClientSetName(ctx, name).Err()
		}
		return nil
	}
}

// ClusterSlots returns a redis.ClusterOptions.ClusterSlots that reads
// CLUSTER SLOTS from the first of addrs that answers, through a client
// made for the call with the options of node; go-redis v8.11.5 cannot read
// Redis 7's reply itself (a node has a fourth field).
func ClusterSlots(node *redis.Options, addrs ...string) func(context.Context) ([]redis.ClusterSlot, error) {
	return func(ctx context.Context) (slots []redis.ClusterSlot, err error) {
		for _, addr := range addrs {
			o := *node
			o.Addr = addr
			rdb := redis.NewClient(&o)
			var v any
			v, err = rdb.Do(ctx, "cluster", "slots").Result()
			_ = rdb.Close()
			if err == nil {
				return parseSlots(v)
			}
		}
		return nil, err
	}
}

// parseSlots reads a CLUSTER SLOTS reply: [start end [ip port id ...]...]...
func parseSlots(v any) ([]redis.ClusterSlot, error) {
	rows, _ := v.([]any)
	slots := make([]redis.ClusterSlot, len(rows))
	for i, r := range rows {
		f, _ := r.([]any)
		start, ok1 := at[int64](f, 0)
		end, ok2 := at[int64](f, 1)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("relock/goredisv8: unexpected CLUSTER SLOTS entry %v", r)
		}
		slots[i] = redis.ClusterSlot{Start: int(start), End: int(end)}
		for _, n := range f[2:] {
			nf, _ := n.([]any)
			ip, _ := at[string](nf, 0)
			port, _ := at[int64](nf, 1)
			id, _ := at[string](nf, 2)
			slots[i].Nodes = append(slots[i].Nodes, redis.ClusterNode{ID: id, Addr: net.JoinHostPort(ip, strconv.FormatInt(port, 10))})
		}
	}
	return slots, nil
}

// at returns a[i] as a T, if it is one.
func at[T any](a []any, i int) (T, bool) {
	var v T
	if i < len(a) {
		v, ok := a[i].(T)
		return v, ok
	}
	return v, false
}
