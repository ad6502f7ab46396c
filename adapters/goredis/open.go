package goredis

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/redis/go-redis/v9"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

// Driver opens go-redis clients from URLs, for relock.Open("goredis", dsn).
type Driver struct{}

// Open builds a go-redis client from dsn and returns a Conn that owns it.
// The form of dsn picks the client:
//
//	redis://[user:password@]host:port[/db][?option=value...]   *redis.Client (redis.ParseURL)
//	redis://host:port?addr=host2:port2&addr=...                  *redis.ClusterClient (redis.ParseClusterURL)
//	redis://sentinel:port?master_name=NAME[&addr=sentinel2:port] failover *redis.Client (redis.ParseFailoverURL)
//
// rediss:// turns on TLS, and unix:///path/to/socket (?db=N) uses a Unix
// socket. The query options are those go-redis's parser for the form knows
// (pool_size, dial_timeout, read_timeout, write_timeout, client_name, db,
// protocol, ...); any other is an error. Open sets ContextTimeoutEnabled,
// so that every call ends at its context's deadline. It does not contact
// the server, and its errors match relock.ErrInvalidArgument.
//
// go-redis logs dial failures through a logger global to the process,
// which Open leaves alone; redis.SetLogger silences it.
func (Driver) Open(dsn string) (driver.Conn, error) {
	rdb, err := openClient(dsn)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password included
		}
		return nil, fmt.Errorf("relock/goredis: invalid DSN: %w: %w", relock.ErrInvalidArgument, err)
	}
	return &Conn{rdb: rdb, owned: true, g: newGuard(rdb)}, nil
}

// openClient builds the client that dsn names, honouring context deadlines.
func openClient(dsn string) (redis.UniversalClient, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, err
	}
	switch q := u.Query(); {
	case q.Has("master_name"):
		opt, err := redis.ParseFailoverURL(dsn)
		if err != nil {
			return nil, err
		}
		opt.ContextTimeoutEnabled = true
		return redis.NewFailoverClient(opt), nil
	case q.Has("addr"):
		opt, err := redis.ParseClusterURL(dsn)
		if err != nil {
			return nil, err
		}
		opt.ContextTimeoutEnabled = true
		return redis.NewClusterClient(opt), nil
	}
	opt, err := redis.ParseURL(dsn)
	if err != nil {
		return nil, err
	}
	opt.ContextTimeoutEnabled = true
	return redis.NewClient(opt), nil
}
