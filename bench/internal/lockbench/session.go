// Package lockbench runs Redis lock libraries side by side against one
// Redis: relock through each adapter, its peers (redsync, bsm/redislock,
// rueidislock) and a raw SET NX loop, in an uncontended and a contended
// scenario. cmd/lockbench is its command line.
package lockbench

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// ErrGaveUp marks a Lock call that ended because the library's own policy
// stopped waiting (no retry configured, tries exhausted) while the caller's
// context was still alive. The harness then calls Lock again at once and
// counts a give-up: that is how a caller of such a library has to loop.
var ErrGaveUp = errors.New("lockbench: library gave up")

// A Session is one contender opened against one Redis: its client(s) and
// lock objects. It must be safe for concurrent use by the workers that
// share it.
type Session interface {
	// Lock obtains key, waiting as the library's policy allows, bounded by
	// ctx. It returns the function that releases the lock. A policy that
	// stops waiting while ctx is alive must return an error matching
	// ErrGaveUp.
	Lock(ctx context.Context, key string) (Unlock, error)
	// Close releases the clients the session opened.
	Close() error
}

// Unlock releases one obtained lock. An error means the release failed or
// found the lock no longer ours.
type Unlock func(ctx context.Context) error

// Config is what every contender is opened with.
type Config struct {
	// Addr is the Redis address, host:port.
	Addr string
	// DB is the database number.
	DB int
	// Password, if the server wants one.
	Password string
	// TTL is the lock lifetime asked for by the contenders that take one
	// (relock, redislock, the raw loop, redsync's tuned variant). Libraries
	// run with their defaults keep their own default lifetime.
	TTL time.Duration
	// PoolSize is the connection pool size of pooled clients (go-redis
	// PoolSize, redigo MaxIdle), so that no worker waits for a connection.
	PoolSize int
	// Sent, when not nil, counts the commands the contenders' clients send.
	Sent *atomic.Int64
}

// A Contender is one library in one configuration.
type Contender struct {
	// Name is unique and matched by -only.
	Name string
	// Library groups contenders: "relock", "redsync", "redislock",
	// "rueidislock", "raw".
	Library string
	// Client is the Redis client library it runs on: "goredis", "redigo"
	// or "rueidis". Its uncontended rate is compared with the raw loop on
	// the same client (RawFor).
	Client string
	// Settings says, in a few words, how it is configured.
	Settings string
	// MustExclude is set for contenders whose mutual exclusion is asserted
	// (the harness test fails on any violation); peers are only reported.
	MustExclude bool
	// Permits is how many holders of one key may overlap (a semaphore's
	// permits); 0 means 1, a mutex.
	Permits int
	// Raw, if set, names the raw loop this contender is compared with
	// (a client built with other options than the usual one).
	Raw string
	// Open connects a new Session.
	Open func(cfg Config) (Session, error)
}
