package goredis

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/redis/go-redis/v9"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

// Driver opens go-redis connections from URLs. It is registered with relock
// under the name "goredis"; most programs use it through relock.Open.
type Driver struct{}

// Open builds a go-redis client from dsn and returns a Conn that owns it:
// the Conn's Close closes it. The form of dsn picks the client:
//
//	redis://[user:password@]host:port[/db][?option=value...]   *redis.Client (redis.ParseURL)
//	redis://host:port?addr=host2:port2&addr=...                  *redis.ClusterClient (redis.ParseClusterURL)
//	redis://sentinel:port?master_name=NAME[&addr=sentinel2:port] failover *redis.Client (redis.ParseFailoverURL)
//
// rediss:// instead of redis:// turns on TLS, and unix:///path/to/socket
// (?db=N) connects over a Unix socket. The query options are those
// go-redis's parser for that form knows (protocol=2, dial_timeout=3s,
// read_timeout, write_timeout, pool_size, client_name, db, ...: the
// vocabulary the three adapters share, and more); any other is an error. Open sets
// ContextTimeoutEnabled, so that every call ends at its context's deadline.
//
// Open does not contact the server: an unreachable server, a bad password
// or a TLS mismatch surface on the first call, within that call's context.
// Every error of Open matches relock.ErrInvalidArgument.
//
// go-redis logs dial failures ("failed to dial after 5 attempts") through
// a logger global to the process. Open leaves it alone, since the
// program's other go-redis clients share it; to silence it, call
// redis.SetLogger with a logger whose Printf does nothing (the relock
// command does, unless -v).
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
	q := u.Query()
	switch {
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
