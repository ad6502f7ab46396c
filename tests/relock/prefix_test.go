package relock_test

// Issue 15.4 and two papercuts of issue 18: WithKeyPrefix is a Client
// setting that Obtain refuses, names round-trip through the API, and New
// refuses a prefix whose locks could not keep their keys in one slot. The
// keys themselves are checked in keys_test.go, and against a Redis user
// confined to the prefix in each adapter's TestKeyPrefixACL.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredislib "github.com/redis/go-redis/v9"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/memdriver"
)

// WithKeyPrefix given to Obtain or Do fails with ErrInvalidArgument
// before anything is sent, on a Client with or without a prefix of its
// own.
func TestObtainRefusesKeyPrefix(t *testing.T) {
	store := memdriver.New()
	for _, c := range []*relock.Client{
		newClient(t, store.Conn()),
		newClient(t, store.Conn(), relock.WithKeyPrefix("app:")),
	} {
		ctx := context.Background()
		for _, p := range []string{"app:", "other:", ""} {
			if _, err := c.Obtain(ctx, "job", time.Second, relock.WithKeyPrefix(p)); !errors.Is(err, relock.ErrInvalidArgument) {
				t.Fatalf("Obtain with WithKeyPrefix(%q) = %v; want ErrInvalidArgument", p, err)
			}
		}
		ran := false
		err := c.Do(ctx, "job", time.Second, func(context.Context) error { ran = true; return nil }, relock.WithKeyPrefix("other:"))
		if !errors.Is(err, relock.ErrInvalidArgument) || ran {
			t.Fatalf("Do with WithKeyPrefix = %v (ran %v); want ErrInvalidArgument", err, ran)
		}
	}
	if n := store.Commands(); n != 0 {
		t.Fatalf("%d commands sent, want none", n)
	}
}

// New (and NewQuorum) refuse a prefix that would leave its locks unusable
// or without companions in their slot.
func TestNewRefusesUnusablePrefix(t *testing.T) {
	store := memdriver.New()
	for _, p := range []string{"app{", "{}:", "{", "x}:relock:", "{t}:relock:"} {
		if c, err := relock.New(store.Conn(), relock.WithKeyPrefix(p)); !errors.Is(err, relock.ErrInvalidArgument) {
			if c != nil {
				_ = c.Close()
			}
			t.Errorf("New with WithKeyPrefix(%q) = %v; want ErrInvalidArgument", p, err)
		}
	}
	conns := []driver.Conn{store.Conn(), memdriver.New().Conn(), memdriver.New().Conn()}
	if c, err := relock.NewQuorum(conns, relock.WithKeyPrefix("app{")); !errors.Is(err, relock.ErrInvalidArgument) {
		if c != nil {
			_ = c.Close()
		}
		t.Errorf("NewQuorum with WithKeyPrefix(%q) = %v; want ErrInvalidArgument", "app{", err)
	}
	for _, p := range []string{"app:", "{tenant}:", "a}b:"} {
		c, err := relock.New(store.Conn(), relock.WithKeyPrefix(p))
		if err != nil {
			t.Fatalf("New with WithKeyPrefix(%q): %v", p, err)
		}
		_ = c.Close()
	}
	if n := store.Commands(); n != 0 {
		t.Fatalf("%d commands sent, want none", n)
	}
}

// On a prefixed Client, the name Lock.Key returns is what Obtain was
// given, and Inspect, Attach and Obtain on the same Client take it back:
// Obtain → Key → Inspect/Attach finds the same lock, on every path.
func TestKeyPrefixNamesRoundTrip(t *testing.T) {
	eachPrefixedPath(t, func(t *testing.T, c *relock.Client, prefix, name string) {
		ctx := ctxT(t, 10*time.Second)
		l, err := c.Obtain(ctx, name, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if l.Key() != name || l.RedisKey() != prefix+name {
			t.Fatalf("Key(), RedisKey() = %q, %q; want %q, %q", l.Key(), l.RedisKey(), name, prefix+name)
		}
		info, err := c.Inspect(ctx, l.Key())
		if err != nil || !info.Held || info.Token != l.Token() {
			t.Fatalf("Inspect(Key()) = %+v, %v; want held by %s", info, err, l.Token())
		}
		al, err := c.Attach(ctx, l.Key(), l.Token())
		if err != nil {
			t.Fatalf("Attach(Key(), Token()): %v", err)
		}
		if al.Key() != name || al.RedisKey() != prefix+name {
			t.Fatalf("attached Key(), RedisKey() = %q, %q; want %q, %q", al.Key(), al.RedisKey(), name, prefix+name)
		}
		if _, err := c.TryObtain(ctx, al.Key(), time.Second); !errors.Is(err, relock.ErrNotObtained) {
			t.Fatalf("TryObtain(Key()) of the held lock = %v, want ErrNotObtained", err)
		}
		if err := al.Release(ctx); err != nil {
			t.Fatalf("Release of the attached lock: %v", err)
		}
		if info, err := c.Inspect(ctx, l.Key()); err != nil || info.Held {
			t.Fatalf("Inspect(Key()) after Release = %+v, %v; want not held", info, err)
		}
	})
}

// eachPrefixedPath runs f with a prefixed Client on the script path
// (miniredis and the shared real server), the WATCH path (memdriver) and a
// quorum of three miniredis servers, with a unique name.
func eachPrefixedPath(t *testing.T, f func(t *testing.T, c *relock.Client, prefix, name string)) {
	const name = "{user:7}:job"
	eachServer(t, func(t *testing.T, s *srv) {
		prefix := s.key(t, "app") + ":"
		f(t, s.client(t, relock.WithKeyPrefix(prefix)), prefix, name)
	})
	t.Run("watch", func(t *testing.T) {
		f(t, newClient(t, memdriver.New().Conn(), relock.WithKeyPrefix("app:")), "app:", name)
	})
	t.Run("quorum", func(t *testing.T) {
		var conns []driver.Conn
		for range 3 {
			rdb := goredislib.NewClient(&goredislib.Options{Addr: miniredis.RunT(t).Addr(), MaxRetries: -1})
			t.Cleanup(func() { _ = rdb.Close() })
			conns = append(conns, goredis.New(rdb))
		}
		c, err := relock.NewQuorum(conns, relock.WithKeyPrefix("app:"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		f(t, c, "app:", name)
	})
}

// A prefixed lock's companions are reserved names too, for a Client with
// the same prefix and for one without: no lock can be named like them.
func TestPrefixedCompanionsAreReservedNames(t *testing.T) {
	store := memdriver.New()
	plain := newClient(t, store.Conn())
	app := newClient(t, store.Conn(), relock.WithKeyPrefix("app:"))
	ctx := ctxT(t, 5*time.Second)
	for _, tc := range []struct {
		c    *relock.Client
		name string
	}{
		{plain, "app:{app:job}:relock:q:job"},
		{plain, "app:{user:7}:relock:f:{user:7}:lock"},
		{app, "{app:job}:relock:q:job"},
		{app, "{app:job}:relock:w:job:0123456789abcdef0123456789abcdef"},
		{app, "x}:relock:"},
	} {
		if _, err := tc.c.Obtain(ctx, tc.name, time.Second); !errors.Is(err, relock.ErrInvalidArgument) {
			t.Errorf("Obtain(%q) = %v; want ErrInvalidArgument", tc.name, err)
		}
		if _, err := tc.c.Inspect(ctx, tc.name); !errors.Is(err, relock.ErrInvalidArgument) {
			t.Errorf("Inspect(%q) = %v; want ErrInvalidArgument", tc.name, err)
		}
	}
	if n := store.Commands(); n != 0 {
		t.Fatalf("%d commands sent for reserved names, want none", n)
	}
}
