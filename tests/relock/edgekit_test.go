package relock_test

// Helpers shared by the edge tests (edges_test.go, deadline_test.go,
// queue_test.go, meta_test.go): servers to run against, drivers that stall
// or count, and unique key names that clean up after themselves.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredislib "github.com/redis/go-redis/v9"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/memdriver"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// srv is one Redis server a test runs against: a miniredis, the shared
// real server, or a private one.
type srv struct {
	addr string
	mini *miniredis.Miniredis // nil for a real server
}

// eachServer runs f on a miniredis and on the shared real Redis server
// (skipped when unreachable, failed when RELOCK_REQUIRE_REDIS=1).
func eachServer(t *testing.T, f func(t *testing.T, s *srv)) {
	t.Helper()
	t.Run("miniredis", func(t *testing.T) {
		m := miniredis.RunT(t)
		f(t, &srv{addr: m.Addr(), mini: m})
	})
	t.Run("redis", func(t *testing.T) {
		f(t, &srv{addr: testredis.Addr(t)})
	})
}

// conn returns a go-redis adapter over a new client of s, closed when the
// test ends. The client never retries a command by itself.
func (s *srv) conn(t *testing.T) *goredis.Conn {
	t.Helper()
	rdb := goredislib.NewClient(&goredislib.Options{Addr: s.addr, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	return goredis.New(rdb)
}

// client returns a relock Client over a new connection to s, closed when
// the test ends.
func (s *srv) client(t *testing.T, opts ...relock.Option) *relock.Client {
	t.Helper()
	return newClient(t, s.conn(t), opts...)
}

func newClient(t *testing.T, conn driver.Conn, opts ...relock.Option) *relock.Client {
	t.Helper()
	c, err := relock.New(conn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// do sends one command to s.
func (s *srv) do(t *testing.T, args ...string) any {
	t.Helper()
	r, err := testredis.Do(s.addr, args...)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return r
}

// get returns the value of key on s, and whether it exists.
func (s *srv) get(t *testing.T, key string) (string, bool) {
	t.Helper()
	r := s.do(t, "GET", key)
	if r == nil {
		return "", false
	}
	return r.(string), true
}

// key returns a lock name unique to this run: base with a random suffix
// (inside the hash tag, if base has one). When the test ends, every key of
// s whose name contains the suffix is deleted, so that nothing of the test
// stays on a shared server, whatever companion keys relock made.
func (s *srv) key(t *testing.T, base string) string {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	u := "edge" + hex.EncodeToString(b[:])
	t.Cleanup(func() { s.deleteMatching(t, u) })
	if i := strings.IndexByte(base, '}'); i > 0 {
		return base[:i] + "-" + u + base[i:]
	}
	return base + "-" + u
}

func (s *srv) deleteMatching(t *testing.T, part string) {
	cursor := "0"
	for range 1000 {
		r, err := testredis.Do(s.addr, "SCAN", cursor, "MATCH", "*"+part+"*", "COUNT", "1000")
		if err != nil {
			t.Logf("clean-up of *%s*: %v", part, err)
			return
		}
		a := r.([]any)
		for _, k := range a[1].([]any) {
			_, _ = testredis.Do(s.addr, "DEL", k.(string))
		}
		if cursor = a[0].(string); cursor == "0" {
			return
		}
	}
}

// gate stalls calls: while stalled is set, every call blocks until its
// context ends, as against a server that accepts connections and never
// answers.
type gate struct {
	stalled atomic.Bool
	calls   atomic.Int64 // calls that stalled
}

// wait blocks until ctx ends if the gate is stalled, and reports the
// context's error then.
func (g *gate) wait(ctx context.Context) error {
	if !g.stalled.Load() {
		return nil
	}
	g.calls.Add(1)
	<-ctx.Done()
	return fmt.Errorf("stalled driver: %w", ctx.Err())
}

// stallWatch is a memdriver connection (the WATCH path) behind a gate.
type stallWatch struct {
	gate
	c *memdriver.Conn
}

func (s *stallWatch) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	if err := s.wait(ctx); err != nil {
		return false, err
	}
	return s.c.SetNX(ctx, key, value, ttl)
}

func (s *stallWatch) Get(ctx context.Context, key string) (string, bool, error) {
	if err := s.wait(ctx); err != nil {
		return "", false, err
	}
	return s.c.Get(ctx, key)
}

func (s *stallWatch) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	return s.c.Watch(ctx, keys, fn)
}

func (s *stallWatch) Close() error { return s.c.Close() }

// stallScript is a script-path driver (go-redis on a miniredis) behind a
// gate. It offers no pub/sub: its waiters poll.
type stallScript struct {
	gate
	c *goredis.Conn
}

func (s *stallScript) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	if err := s.wait(ctx); err != nil {
		return false, err
	}
	return s.c.SetNX(ctx, key, value, ttl)
}

func (s *stallScript) Get(ctx context.Context, key string) (string, bool, error) {
	if err := s.wait(ctx); err != nil {
		return "", false, err
	}
	return s.c.Get(ctx, key)
}

func (s *stallScript) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.c.Eval(ctx, script, keys, args...)
}

func (s *stallScript) EvalSha(ctx context.Context, sha string, keys []string, args ...string) (any, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.c.EvalSha(ctx, sha, keys, args...)
}

func (s *stallScript) Close() error { return s.c.Close() }

// memDel deletes key from store, as an outside DEL would.
func memDel(t *testing.T, store *memdriver.Store, key string) {
	t.Helper()
	err := store.Conn().Watch(context.Background(), []string{key}, func(tx driver.Tx) error {
		_, err := tx.Exec(context.Background(), []string{"DEL", key})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// memGet returns key's value in store.
func memGet(t *testing.T, store *memdriver.Store, key string) (string, bool) {
	t.Helper()
	v, ok, err := store.Conn().Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return v, ok
}

// ctxT returns a context that ends after d, or with the test.
func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// exampleRedis starts an embedded Redis so that the examples run anywhere;
// in a program, connect to your own server instead.
func exampleRedis() (*goredislib.Client, func()) {
	srv, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	rdb := goredislib.NewClient(&goredislib.Options{Addr: srv.Addr()})
	return rdb, func() { _ = rdb.Close(); srv.Close() }
}

// fencedStore stands for storage that remembers the highest fencing number
// it has seen and rejects writes carrying a lower one.
type fencedStore struct {
	highest int64
	value   string
}

var errStaleHolder = errors.New("store: write from a stale lock holder")

func (s *fencedStore) Write(fence int64, v string) error {
	if fence < s.highest {
		return errStaleHolder
	}
	s.highest, s.value = fence, v
	return nil
}

// stallingConn lets obtains through and stalls every transaction (the
// refresh path) until its context ends: a backend that stopped answering,
// or a pool with no free connection.
type stallingConn struct {
	*memdriver.Conn
	stall chan struct{} // closed: stall from now on
}

func (c *stallingConn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	select {
	case <-c.stall:
		<-ctx.Done()
		return ctx.Err()
	default:
		return c.Conn.Watch(ctx, keys, fn)
	}
}
