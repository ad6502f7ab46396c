package chaos

import (
	"context"
	"fmt"

	"github.com/gomodule/redigo/redis"
	goredislib "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/adapters/redigo"
	rueidisadapter "github.com/relock-go/relock/adapters/rueidis"
	"github.com/relock-go/relock/driver"
)

// Adapters are the three adapters the workload spreads its workers over,
// in the order NewConn knows them.
var Adapters = []string{"goredis", "redigo", "rueidis"}

// NewConn returns a driver connection of adapter over a new client of the
// server at addr, built as the adapters' own tests build them, and a
// function that closes that client (relock's Close leaves it open):
//
//   - goredis: redis.NewClient with ContextTimeoutEnabled, so that a
//     context's deadline bounds every command (without it a silent server
//     costs the 3 s ReadTimeout and retries, whatever the context says);
//   - redigo: a redis.Pool with MaxIdle 8 and DialContext;
//   - rueidis: rueidis.NewClient with its defaults (it connects at once).
func NewConn(adapter, addr string) (driver.Conn, func(), error) {
	switch adapter {
	case "goredis":
		rdb := goredislib.NewClient(&goredislib.Options{Addr: addr, ContextTimeoutEnabled: true})
		return goredis.New(rdb), func() { _ = rdb.Close() }, nil
	case "redigo":
		pool := &redis.Pool{
			MaxIdle: 8,
			DialContext: func(ctx context.Context) (redis.Conn, error) {
				return redis.DialContext(ctx, "tcp", addr)
			},
		}
		return redigo.New(pool), func() { _ = pool.Close() }, nil
	case "rueidis":
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}})
		if err != nil {
			return nil, nil, fmt.Errorf("chaos: rueidis.NewClient(%s): %w", addr, err)
		}
		return rueidisadapter.New(c), c.Close, nil
	}
	return nil, nil, fmt.Errorf("chaos: unknown adapter %q", adapter)
}

// WatchOnly hides every capability of a driver but driver.Conn and
// driver.Watcher, so that relock runs its WATCH/MULTI/EXEC path (and its
// waiters poll).
type WatchOnly struct {
	driver.Conn                // SetNX, Get, Close
	W           driver.Watcher // the same driver, for Watch
}

// NewWatchOnly wraps conn, which must implement driver.Watcher.
func NewWatchOnly(conn driver.Conn) (WatchOnly, error) {
	w, ok := conn.(driver.Watcher)
	if !ok {
		return WatchOnly{}, fmt.Errorf("chaos: %T is not a driver.Watcher", conn)
	}
	return WatchOnly{Conn: conn, W: w}, nil
}

// Watch runs the wrapped driver's Watch.
func (c WatchOnly) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return c.W.Watch(ctx, keys, fn)
}
