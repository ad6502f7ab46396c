package lockbench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/bsm/redislock"
	goredisv8lib "github.com/go-redis/redis/v8"
	"github.com/go-redsync/redsync/v4"
	redsyncgoredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	redigo "github.com/gomodule/redigo/redis"
	radixlib "github.com/mediocregopher/radix/v4"
	goredislib "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"github.com/redis/rueidis/rueidislock"
	valkeylib "github.com/valkey-io/valkey-go"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/adapters/goredisv8"
	radixadapter "github.com/relock-go/relock/adapters/radix"
	redigoadapter "github.com/relock-go/relock/adapters/redigo"
	rueidisadapter "github.com/relock-go/relock/adapters/rueidis"
	valkeyadapter "github.com/relock-go/relock/adapters/valkey"
	"github.com/relock-go/relock/driver"
)

// RelockVariants are the relock configurations benchmarked, each through
// every adapter. A new relock option is one line here.
var RelockVariants = []struct {
	Name     string
	Settings string
	Options  []relock.Option
}{
	{"default", "DefaultRetry (ExponentialRetry 2ms..100ms, jittered)", nil},
	{"retry1ms", "WithRetry(FixedRetry(1ms))", []relock.Option{relock.WithRetry(relock.FixedRetry(time.Millisecond))}},
	{"autorefresh", "DefaultRetry + WithAutoRefresh (a refresher per lock, like rueidislock's)", []relock.Option{relock.WithAutoRefresh()}},
}

// relockAdapters open a relock driver over each supported client, built
// the way a user would, sized by cfg.PoolSize. The func returned closes the
// client.
var relockAdapters = []struct {
	Name string
	// Raw is the raw loop to compare with, when the adapter's client has
	// none of its own ("": raw/<Name>).
	Raw  string
	Open func(cfg Config) (driver.Conn, func() error, error)
}{
	{"goredis", "", func(cfg Config) (driver.Conn, func() error, error) {
		rdb := newGoRedis(cfg)
		return goredis.New(rdb), rdb.Close, nil
	}},
	{"redigo", "", func(cfg Config) (driver.Conn, func() error, error) {
		pool := newRedigoPool(cfg)
		return redigoadapter.New(pool), pool.Close, nil
	}},
	{"rueidis", "", func(cfg Config) (driver.Conn, func() error, error) {
		c, err := newRueidis(cfg)
		if err != nil {
			return nil, nil, err
		}
		return rueidisadapter.New(c), func() error { c.Close(); return nil }, nil
	}},
	// The three newer adapters' clients are built with default options
	// but the pool size. Their clients have no raw loop here: they are
	// compared with raw/goredis.
	{"goredisv8", RawName, func(cfg Config) (driver.Conn, func() error, error) {
		rdb := goredisv8lib.NewClient(&goredisv8lib.Options{Addr: cfg.Addr, DB: cfg.DB, Password: cfg.Password, PoolSize: cfg.PoolSize})
		if cfg.Sent != nil {
			rdb.AddHook(goredisv8Counter{n: cfg.Sent})
		}
		return goredisv8.New(rdb), rdb.Close, nil
	}},
	{"valkey", RawName, func(cfg Config) (driver.Conn, func() error, error) {
		c, err := valkeylib.NewClient(valkeylib.ClientOption{InitAddress: []string{cfg.Addr}, SelectDB: cfg.DB, Password: cfg.Password, DisableCache: true})
		if err != nil {
			return nil, nil, err
		}
		return valkeyadapter.New(countValkey(c, cfg.Sent)), func() error { c.Close(); return nil }, nil
	}},
	{"radix", RawName, func(cfg Config) (driver.Conn, func() error, error) {
		dialer := radixlib.Dialer{AuthPass: cfg.Password, SelectDB: fmt.Sprint(cfg.DB)}
		pool, err := radixlib.PoolConfig{Size: cfg.PoolSize, PingInterval: -1, Dialer: dialer}.New(context.Background(), "tcp", cfg.Addr)
		if err != nil {
			return nil, nil, err
		}
		return radixadapter.New(countRadix(pool, cfg.Sent), radixadapter.WithDialer(dialer)), pool.Close, nil
	}},
}

// Contenders returns every contender, in table order.
func Contenders() []Contender {
	cs := append([]Contender(nil), mutexContenders()...)
	return append(cs, primitiveContenders()...)
}

// mutexContenders are relock's mutex through every adapter and its peers.
func mutexContenders() []Contender {
	var cs []Contender
	for _, a := range relockAdapters {
		for _, v := range RelockVariants {
			cs = append(cs, Contender{
				Name:        "relock/" + a.Name + "/" + v.Name,
				Library:     "relock",
				Client:      a.Name,
				Raw:         a.Raw,
				Settings:    v.Settings,
				MustExclude: true,
				Open: func(cfg Config) (Session, error) {
					conn, closeClient, err := a.Open(cfg)
					if err != nil {
						return nil, err
					}
					c, err := relock.New(conn, v.Options...)
					if err != nil {
						_ = closeClient()
						return nil, err
					}
					return &relockSession{c: c, ttl: cfg.TTL, closeClient: closeClient}, nil
				},
			})
		}
	}
	cs = append(cs,
		Contender{
			Name: "relock/goredis/ctxtimeout", Library: "relock", Client: "goredis", Raw: "raw/goredis-ctx", MustExclude: true,
			Settings: "DefaultRetry, over a go-redis client with ContextTimeoutEnabled (as relock.Open(\"goredis\", url) builds it): contexts' deadlines reach the sockets, so the adapter need not run calls with a deadline on a goroutine of their own",
			Open: func(cfg Config) (Session, error) {
				rdb := newGoRedis(cfg, func(o *goredislib.Options) { o.ContextTimeoutEnabled = true })
				c, err := relock.New(goredis.New(rdb))
				if err != nil {
					_ = rdb.Close()
					return nil, err
				}
				return &relockSession{c: c, ttl: cfg.TTL, closeClient: rdb.Close}, nil
			},
		},
		Contender{
			Name: "redsync/default", Library: "redsync", Client: "goredis",
			Settings: "expiry 8s, 32 tries, random 50-250ms delay",
			Open:     func(cfg Config) (Session, error) { return openRedsync(cfg) },
		},
		Contender{
			Name: "redsync/retry1ms", Library: "redsync", Client: "goredis",
			Settings: "WithRetryDelay(1ms), WithTries(MaxInt32), WithExpiry(ttl)",
			Open: func(cfg Config) (Session, error) {
				return openRedsync(cfg,
					redsync.WithRetryDelay(time.Millisecond),
					redsync.WithTries(math.MaxInt32),
					redsync.WithExpiry(cfg.TTL))
			},
		},
		Contender{
			Name: "redislock/default", Library: "redislock", Client: "goredis",
			Settings: "no retry: the worker calls Obtain again at once (tight loop)",
			Open: func(cfg Config) (Session, error) {
				return openRedislock(cfg, func() *redislock.Options { return nil })
			},
		},
		Contender{
			Name: "redislock/linear1ms", Library: "redislock", Client: "goredis",
			Settings: "RetryStrategy LinearBackoff(1ms), context deadline",
			Open: func(cfg Config) (Session, error) {
				return openRedislock(cfg, func() *redislock.Options {
					return &redislock.Options{RetryStrategy: redislock.LinearBackoff(time.Millisecond)}
				})
			},
		},
		Contender{
			Name: "rueidislock/default", Library: "rueidislock", Client: "rueidis",
			Settings: "KeyMajority 2 (3 keys), KeyValidity 5s, tracking without NOLOOP",
			Open: func(cfg Config) (Session, error) {
				return openRueidislock(cfg, rueidislock.LockerOption{})
			},
		},
		Contender{
			Name: "rueidislock/best", Library: "rueidislock", Client: "rueidis",
			Settings: "KeyMajority 1 (1 key), NoLoopTracking",
			Open: func(cfg Config) (Session, error) {
				return openRueidislock(cfg, rueidislock.LockerOption{KeyMajority: 1, NoLoopTracking: true})
			},
		},
		Contender{
			Name: "raw/goredis", Library: "raw", Client: "goredis",
			Settings: "go-redis: Do(SET NX PX) + Script.Run (EVALSHA compare-and-delete, EVAL on NOSCRIPT), 1ms sleep between tries",
			Open:     openRaw,
		},
		Contender{
			Name: "raw/goredis-ctx", Library: "raw", Client: "goredis", Raw: "raw/goredis-ctx",
			Settings: "raw/goredis over a go-redis client with ContextTimeoutEnabled: the same client as relock/goredis/ctxtimeout",
			Open: func(cfg Config) (Session, error) {
				return &rawSession{rdb: newGoRedis(cfg, func(o *goredislib.Options) { o.ContextTimeoutEnabled = true }), ttl: cfg.TTL}, nil
			},
		},
		Contender{
			Name: "raw/redigo", Library: "raw", Client: "redigo",
			Settings: "redigo Pool (MaxIdle = pool size): Do(SET NX PX) + Script.Do (EVALSHA compare-and-delete, EVAL on NOSCRIPT), 1ms sleep between tries",
			Open:     openRawRedigo,
		},
		Contender{
			Name: "raw/rueidis", Library: "raw", Client: "rueidis",
			Settings: "rueidis: B().Set().Nx().Px() + Lua.Exec (EVALSHA compare-and-delete, EVAL on NOSCRIPT), 1ms sleep between tries",
			Open:     openRawRueidis,
		},
	)
	return cs
}

// RawName is the raw loop on go-redis, the baseline of contenders that
// name no client.
const RawName = "raw/goredis"

// RawFor is the name of the raw loop that c is compared with: c.Raw if
// set, else the one on c's own client ("raw/" + c.Client), or RawName when
// c names none.
func RawFor(c Contender) string {
	if c.Raw != "" {
		return c.Raw
	}
	if c.Client == "" {
		return RawName
	}
	return "raw/" + c.Client
}

// newRedigoPool is a redigo Pool as its users build one: MaxIdle set to the
// pool size, so connections are kept between calls.
func newRedigoPool(cfg Config) *redigo.Pool {
	return &redigo.Pool{
		MaxIdle:     cfg.PoolSize,
		IdleTimeout: 5 * time.Minute,
		DialContext: func(ctx context.Context) (redigo.Conn, error) {
			c, err := redigo.DialContext(ctx, "tcp", cfg.Addr,
				redigo.DialDatabase(cfg.DB), redigo.DialPassword(cfg.Password))
			if err != nil || cfg.Sent == nil {
				return c, err
			}
			return redigoCounter{Conn: c, n: cfg.Sent}, nil
		},
	}
}

// newRueidis is a rueidis client without client-side caching, as
// relock.Open("rueidis", ...) builds it (relock never reads the cache).
func newRueidis(cfg Config) (rueidis.Client, error) {
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:  []string{cfg.Addr},
		SelectDB:     cfg.DB,
		Password:     cfg.Password,
		DisableCache: true,
	})
	if err != nil {
		return nil, err
	}
	return countRueidis(c, cfg.Sent), nil
}

// newGoRedis is a go-redis client with default options but the pool size;
// tune, if given, changes the options first.
func newGoRedis(cfg Config, tune ...func(*goredislib.Options)) *goredislib.Client {
	o := &goredislib.Options{
		Addr:     cfg.Addr,
		DB:       cfg.DB,
		Password: cfg.Password,
		PoolSize: cfg.PoolSize,
	}
	for _, f := range tune {
		f(o)
	}
	rdb := goredislib.NewClient(o)
	if cfg.Sent != nil {
		rdb.AddHook(goredisCounter{n: cfg.Sent})
	}
	return rdb
}

// gaveUp wraps a library's "not obtained" error when ctx is still alive;
// once ctx is over, the context's error is what counts.
func gaveUp(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return fmt.Errorf("%w: %w", ErrGaveUp, err)
}

// ---- relock

type relockSession struct {
	c           *relock.Client
	ttl         time.Duration
	closeClient func() error
}

func (s *relockSession) Lock(ctx context.Context, key string) (Unlock, error) {
	l, err := s.c.Obtain(ctx, key, s.ttl)
	if err != nil {
		if errors.Is(err, relock.ErrNotObtained) {
			return nil, gaveUp(ctx, err)
		}
		return nil, err
	}
	return l.Release, nil
}

func (s *relockSession) Close() error {
	return errors.Join(s.c.Close(), s.closeClient())
}

// ---- redsync

type redsyncSession struct {
	rdb  *goredislib.Client
	rs   *redsync.Redsync
	opts []redsync.Option
}

func openRedsync(cfg Config, opts ...redsync.Option) (Session, error) {
	rdb := newGoRedis(cfg)
	return &redsyncSession{rdb: rdb, rs: redsync.New(redsyncgoredis.NewPool(rdb)), opts: opts}, nil
}

func (s *redsyncSession) Lock(ctx context.Context, key string) (Unlock, error) {
	// A Mutex keeps the value it locked with: one per acquisition, since it
	// is not safe for concurrent use.
	m := s.rs.NewMutex(key, s.opts...)
	if err := m.LockContext(ctx); err != nil {
		var taken *redsync.ErrTaken
		if errors.Is(err, redsync.ErrFailed) || errors.As(err, &taken) {
			return nil, gaveUp(ctx, err)
		}
		return nil, err
	}
	return func(ctx context.Context) error {
		ok, err := m.UnlockContext(ctx)
		if err == nil && !ok {
			err = errors.New("redsync: unlock reported false")
		}
		return err
	}, nil
}

func (s *redsyncSession) Close() error { return s.rdb.Close() }

// ---- bsm/redislock

type redislockSession struct {
	rdb  *goredislib.Client
	c    *redislock.Client
	ttl  time.Duration
	opts func() *redislock.Options // fresh per call: some strategies keep state
}

func openRedislock(cfg Config, opts func() *redislock.Options) (Session, error) {
	rdb := newGoRedis(cfg)
	return &redislockSession{rdb: rdb, c: redislock.New(rdb), ttl: cfg.TTL, opts: opts}, nil
}

func (s *redislockSession) Lock(ctx context.Context, key string) (Unlock, error) {
	l, err := s.c.Obtain(ctx, key, s.ttl, s.opts())
	if err != nil {
		if errors.Is(err, redislock.ErrNotObtained) {
			return nil, gaveUp(ctx, err)
		}
		return nil, err
	}
	return l.Release, nil
}

func (s *redislockSession) Close() error { return s.rdb.Close() }

// ---- rueidislock

type rueidislockSession struct {
	l rueidislock.Locker
}

func openRueidislock(cfg Config, opt rueidislock.LockerOption) (Session, error) {
	opt.ClientOption = rueidis.ClientOption{
		InitAddress: []string{cfg.Addr},
		SelectDB:    cfg.DB,
		Password:    cfg.Password,
	}
	opt.ClientBuilder = func(o rueidis.ClientOption) (rueidis.Client, error) {
		c, err := rueidis.NewClient(o)
		if err != nil {
			return nil, err
		}
		return countRueidis(c, cfg.Sent), nil
	}
	l, err := rueidislock.NewLocker(opt)
	if err != nil {
		return nil, err
	}
	return &rueidislockSession{l: l}, nil
}

func (s *rueidislockSession) Lock(ctx context.Context, key string) (Unlock, error) {
	lctx, cancel, err := s.l.WithContext(ctx, key)
	if err != nil {
		if errors.Is(err, rueidislock.ErrNotLocked) {
			return nil, gaveUp(ctx, err)
		}
		return nil, err
	}
	return func(context.Context) error {
		// The lock is a context: if it ended before we let go, the lock was
		// lost while we held it.
		lost := lctx.Err()
		cancel() // deletes the keys; returns when done
		if lost != nil {
			return fmt.Errorf("rueidislock: lock context ended while held: %w", lost)
		}
		return nil
	}, nil
}

func (s *rueidislockSession) Close() error { s.l.Close(); return nil }

// ---- raw floors: the same loop on each client, as its users write it:
// SET key token NX PX ttl, a 1 ms sleep after a failed try, release by a
// compare-and-delete script (EVALSHA, EVAL on NOSCRIPT).

const rawReleaseSrc = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`

var (
	rawRelease        = goredislib.NewScript(rawReleaseSrc)
	rawReleaseRedigo  = redigo.NewScript(1, rawReleaseSrc)
	rawReleaseRueidis = rueidis.NewLuaScript(rawReleaseSrc)
)

// rawToken is a random 128-bit token in hex.
func rawToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// rawLoop calls set until it reports the key set (or fails), sleeping 1 ms
// after each "not set", bounded by ctx.
func rawLoop(ctx context.Context, set func() (bool, error)) error {
	for {
		ok, err := set()
		if err != nil || ok {
			return err
		}
		t := time.NewTimer(time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

var errRawNotOurs = errors.New("raw: key no longer ours at release")

type rawSession struct {
	rdb *goredislib.Client
	ttl time.Duration
}

func openRaw(cfg Config) (Session, error) {
	return &rawSession{rdb: newGoRedis(cfg), ttl: cfg.TTL}, nil
}

func (s *rawSession) Lock(ctx context.Context, key string) (Unlock, error) {
	token := rawToken()
	err := rawLoop(ctx, func() (bool, error) {
		err := s.rdb.Do(ctx, "set", key, token, "nx", "px", s.ttl.Milliseconds()).Err()
		if errors.Is(err, goredislib.Nil) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		n, err := rawRelease.Run(ctx, s.rdb, []string{key}, token).Int64()
		if err == nil && n != 1 {
			err = errRawNotOurs
		}
		return err
	}, nil
}

func (s *rawSession) Close() error { return s.rdb.Close() }

type rawRedigoSession struct {
	pool *redigo.Pool
	ttl  time.Duration
}

func openRawRedigo(cfg Config) (Session, error) {
	return &rawRedigoSession{pool: newRedigoPool(cfg), ttl: cfg.TTL}, nil
}

func (s *rawRedigoSession) Lock(ctx context.Context, key string) (Unlock, error) {
	token := rawToken()
	err := rawLoop(ctx, func() (bool, error) {
		conn, err := s.pool.GetContext(ctx)
		if err != nil {
			return false, err
		}
		defer conn.Close()
		r, err := conn.Do("SET", key, token, "NX", "PX", s.ttl.Milliseconds())
		return r != nil, err
	})
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		conn, err := s.pool.GetContext(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		n, err := redigo.Int(rawReleaseRedigo.Do(conn, key, token))
		if err == nil && n != 1 {
			err = errRawNotOurs
		}
		return err
	}, nil
}

func (s *rawRedigoSession) Close() error { return s.pool.Close() }

type rawRueidisSession struct {
	c   rueidis.Client
	ttl time.Duration
}

func openRawRueidis(cfg Config) (Session, error) {
	c, err := newRueidis(cfg)
	if err != nil {
		return nil, err
	}
	return &rawRueidisSession{c: c, ttl: cfg.TTL}, nil
}

func (s *rawRueidisSession) Lock(ctx context.Context, key string) (Unlock, error) {
	token := rawToken()
	err := rawLoop(ctx, func() (bool, error) {
		err := s.c.Do(ctx, s.c.B().Set().Key(key).Value(token).Nx().Px(s.ttl).Build()).Error()
		if rueidis.IsRedisNil(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		n, err := rawReleaseRueidis.Exec(ctx, s.c, []string{key}, []string{token}).AsInt64()
		if err == nil && n != 1 {
			err = errRawNotOurs
		}
		return err
	}, nil
}

func (s *rawRueidisSession) Close() error { s.c.Close(); return nil }
