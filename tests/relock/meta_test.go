package relock_test

// Issue 11.3: metadata, Inspect, Attach and WithKeyPrefix.

import (
	"context"
	"errors"
	"strings"
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

// eachPath runs f with a Client on the script path (miniredis and the
// shared real server), the WATCH path (memdriver) and a quorum of three
// miniredis servers, and a unique key name for it.
func eachPath(t *testing.T, f func(t *testing.T, newC func() *relock.Client, key string)) {
	eachServer(t, func(t *testing.T, s *srv) {
		f(t, func() *relock.Client { return s.client(t) }, s.key(t, "meta"))
	})
	t.Run("watch", func(t *testing.T) {
		store := memdriver.New()
		f(t, func() *relock.Client { return newClient(t, store.Conn()) }, "meta")
	})
	t.Run("quorum", func(t *testing.T) {
		var addrs []string
		for range 3 {
			addrs = append(addrs, miniredis.RunT(t).Addr())
		}
		f(t, func() *relock.Client {
			var conns []driver.Conn
			for _, a := range addrs {
				rdb := goredislib.NewClient(&goredislib.Options{Addr: a, MaxRetries: -1})
				t.Cleanup(func() { _ = rdb.Close() })
				conns = append(conns, goredis.New(rdb))
			}
			c, err := relock.NewQuorum(conns)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			return c
		}, "meta")
	})
}

// WithMetadata is readable by anyone through Inspect, on every path, with
// the holder's token and TTL; a free key reads as not held.
func TestMetadataRoundTripsThroughInspect(t *testing.T) {
	eachPath(t, func(t *testing.T, newC func() *relock.Client, key string) {
		c, other := newC(), newC()
		ctx := ctxT(t, 10*time.Second)
		info, err := other.Inspect(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if info.Held || info.Token != "" || info.Metadata != "" {
			t.Fatalf("Inspect of a free key = %+v, want not held", info)
		}
		const meta = "host=a1 pid=42 job=nightly|report" // a '|' inside metadata too
		l, err := c.Obtain(ctx, key, 5*time.Second, relock.WithMetadata(meta))
		if err != nil {
			t.Fatal(err)
		}
		info, err = other.Inspect(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if !info.Held || info.Token != l.Token() || info.Metadata != meta {
			t.Fatalf("Inspect of a held key = %+v, want held by %s with metadata %q", info, l.Token(), meta)
		}
		if info.TTL <= 0 || info.TTL > 5*time.Second {
			t.Fatalf("Inspect TTL = %v, want within (0, 5s]", info.TTL)
		}
		// Metadata leaves the owner check intact.
		if _, err := l.TTL(ctx); err != nil {
			t.Fatalf("TTL of a lock with metadata: %v", err)
		}
		if err := l.Refresh(ctx, 5*time.Second); err != nil {
			t.Fatalf("Refresh of a lock with metadata: %v", err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("Release of a lock with metadata: %v", err)
		}
		if info, err = other.Inspect(ctx, key); err != nil || info.Held {
			t.Fatalf("Inspect after Release = %+v, %v; want not held", info, err)
		}
	})
}

// The waiter's metadata moves with a hand-over: the key then holds the
// new owner's token and metadata.
func TestMetadataMovesWithHandover(t *testing.T) {
	eachServer(t, func(t *testing.T, s *srv) {
		key := s.key(t, "handmeta")
		a, b := s.client(t), s.client(t)
		ctx := ctxT(t, 10*time.Second)
		la, err := a.Obtain(ctx, key, 5*time.Second, relock.WithMetadata("owner=a"))
		if err != nil {
			t.Fatal(err)
		}
		got := obtainAsync(ctx, b, key, 5*time.Second, relock.WithMetadata("owner=b"))
		deadline := time.Now().Add(5 * time.Second)
		for { // b queues
			info, err := a.Inspect(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if info.Waiters == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Inspect counts %d waiters, want b", info.Waiters)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := la.Release(ctx); err != nil {
			t.Fatal(err)
		}
		r := <-got
		if r.err != nil {
			t.Fatal(r.err)
		}
		info, err := a.Inspect(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if info.Token != r.l.Token() || info.Metadata != "owner=b" {
			t.Fatalf("after the hand-over Inspect = %+v, want b's token %s and metadata owner=b", info, r.l.Token())
		}
		if err := r.l.Release(ctx); err != nil {
			t.Fatalf("Release of a handed-over lock with metadata: %v", err)
		}
	})
}

func TestMetadataTooLongIsInvalid(t *testing.T) {
	store := memdriver.New()
	c := newClient(t, store.Conn())
	long := strings.Repeat("m", relock.MaxMetadataLen+1)
	if _, err := c.Obtain(context.Background(), "k", time.Second, relock.WithMetadata(long)); !errors.Is(err, relock.ErrInvalidArgument) {
		t.Fatalf("Obtain with %d bytes of metadata = %v, want ErrInvalidArgument", len(long), err)
	}
	if n := store.Commands(); n != 0 {
		t.Fatalf("%d commands sent, want none", n)
	}
	if _, err := relock.New(store.Conn(), relock.WithMetadata(long)); !errors.Is(err, relock.ErrInvalidArgument) {
		t.Fatalf("New with %d bytes of metadata = %v, want ErrInvalidArgument", len(long), err)
	}
	l, err := c.Obtain(context.Background(), "k", time.Second, relock.WithMetadata(long[:relock.MaxMetadataLen]))
	if err != nil {
		t.Fatalf("Obtain with MaxMetadataLen bytes of metadata: %v", err)
	}
	_ = l.Release(context.Background())
}

// Inspect of a key of another type says so.
func TestInspectWrongType(t *testing.T) {
	t.Run("watch", func(t *testing.T) {
		store := memdriver.New()
		store.SetHash("h")
		c := newClient(t, store.Conn())
		if _, err := c.Inspect(context.Background(), "h"); !errors.Is(err, relock.ErrWrongType) {
			t.Fatalf("Inspect of a hash = %v, want ErrWrongType", err)
		}
	})
	eachServer(t, func(t *testing.T, s *srv) {
		key := s.key(t, "hash")
		s.do(t, "HSET", key, "f", "v")
		s.do(t, "PEXPIRE", key, "60000")
		if _, err := s.client(t).Inspect(context.Background(), key); !errors.Is(err, relock.ErrWrongType) {
			t.Fatalf("Inspect of a hash = %v, want ErrWrongType", err)
		}
	})
}

// Attach rebuilds a lock from its key and token in another Client, with
// the owner check intact.
func TestAttachInAnotherClient(t *testing.T) {
	eachPath(t, func(t *testing.T, newC func() *relock.Client, key string) {
		c, other := newC(), newC()
		ctx := ctxT(t, 10*time.Second)
		l, err := c.Obtain(ctx, key, 5*time.Second, relock.WithMetadata("m"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Attach(ctx, key, strings.Repeat("0", 32)); !errors.Is(err, relock.ErrNotHeld) {
			t.Fatalf("Attach with another token = %v, want ErrNotHeld", err)
		}
		for _, bad := range []string{"", "xyz", strings.Repeat("g", 32), strings.ToUpper(l.Token()), l.Token() + "0"} {
			if _, err := other.Attach(ctx, key, bad); !errors.Is(err, relock.ErrInvalidArgument) {
				t.Fatalf("Attach with token %q = %v, want ErrInvalidArgument", bad, err)
			}
		}
		al, err := other.Attach(ctx, key, l.Token())
		if err != nil {
			t.Fatal(err)
		}
		if al.Key() != l.Key() || al.Token() != l.Token() {
			t.Fatalf("attached lock %s/%s, want %s/%s", al.Key(), al.Token(), l.Key(), l.Token())
		}
		if al.Err() != nil || !time.Now().Before(al.ValidUntil()) {
			t.Fatalf("attached lock ended (%v) or already past its validity (%v)", al.Err(), al.ValidUntil())
		}
		if err := al.Refresh(ctx, 5*time.Second); err != nil {
			t.Fatalf("Refresh of an attached lock: %v", err)
		}
		if d, err := al.TTL(ctx); err != nil || d <= 0 {
			t.Fatalf("TTL of an attached lock = %v, %v", d, err)
		}
		if err := al.Release(ctx); err != nil {
			t.Fatalf("Release of an attached lock: %v", err)
		}
		if err := l.Release(ctx); !errors.Is(err, relock.ErrNotHeld) {
			t.Fatalf("Release by the original holder after the attached one released = %v, want ErrNotHeld", err)
		}
		if _, err := other.Attach(ctx, key, l.Token()); !errors.Is(err, relock.ErrNotHeld) {
			t.Fatalf("Attach to a released lock = %v, want ErrNotHeld", err)
		}
	})
}

// A malformed token is refused before anything is sent.
func TestAttachMalformedTokenSendsNothing(t *testing.T) {
	store := memdriver.New()
	c := newClient(t, store.Conn())
	if _, err := c.Attach(context.Background(), "k", "not-a-token"); !errors.Is(err, relock.ErrInvalidArgument) {
		t.Fatalf("Attach = %v, want ErrInvalidArgument", err)
	}
	if _, err := c.Attach(context.Background(), "{k}:relock:q:k", strings.Repeat("a", 32)); !errors.Is(err, relock.ErrInvalidArgument) {
		t.Fatalf("Attach to a reserved name = %v, want ErrInvalidArgument", err)
	}
	if _, err := c.Inspect(context.Background(), "{k}:relock:q:k"); !errors.Is(err, relock.ErrInvalidArgument) {
		t.Fatalf("Inspect of a reserved name = %v, want ErrInvalidArgument", err)
	}
	if n := store.Commands(); n != 0 {
		t.Fatalf("%d commands sent, want none", n)
	}
}

// WithKeyPrefix: the Redis key is prefix+name; Key returns the name and
// RedisKey the Redis key; Inspect and Attach apply the prefix; a name's
// hash tag still decides its slot, so fencing (whose counter must share the
// slot) works.
func TestKeyPrefix(t *testing.T) {
	eachServer(t, func(t *testing.T, s *srv) {
		prefix := s.key(t, "app") + ":"
		const name = "{user:7}:lock"
		c := s.client(t, relock.WithKeyPrefix(prefix))
		plain := s.client(t)
		ctx := ctxT(t, 10*time.Second)
		l, err := c.Obtain(ctx, name, 5*time.Second, relock.WithFencing(), relock.WithMetadata("m"))
		if err != nil {
			t.Fatal(err)
		}
		if l.Key() != name || l.RedisKey() != prefix+name {
			t.Fatalf("Key(), RedisKey() = %q, %q; want %q, %q", l.Key(), l.RedisKey(), name, prefix+name)
		}
		if v, ok := s.get(t, prefix+name); !ok || !strings.HasPrefix(v, l.Token()) {
			t.Fatalf("GET %s = %q, %v; want the lock's token", prefix+name, v, ok)
		}
		if _, ok := s.get(t, name); ok {
			t.Fatalf("the unprefixed key %s exists", name)
		}
		if testredis.KeySlot(l.RedisKey()) != testredis.KeySlot(name) {
			t.Fatalf("the prefixed key is in slot %d, the name's tag in %d", testredis.KeySlot(l.RedisKey()), testredis.KeySlot(name))
		}
		if l.Fence() <= 0 {
			t.Fatalf("Fence() = %d on a prefixed, tagged name", l.Fence())
		}
		info, err := c.Inspect(ctx, name)
		if err != nil || !info.Held || info.Token != l.Token() || info.Fence != l.Fence() {
			t.Fatalf("Inspect(%q) with the prefix = %+v, %v; want held by the lock with its fence", name, info, err)
		}
		if info, err := plain.Inspect(ctx, prefix+name); err != nil || info.Token != l.Token() {
			t.Fatalf("Inspect(prefix+name) without a prefix = %+v, %v", info, err)
		}
		if info, err := plain.Inspect(ctx, name); err != nil || info.Held {
			t.Fatalf("Inspect(name) without a prefix = %+v, %v; want not held", info, err)
		}
		al, err := c.Attach(ctx, name, l.Token())
		if err != nil {
			t.Fatal(err)
		}
		if al.Key() != name || al.RedisKey() != prefix+name {
			t.Fatalf("attached Key(), RedisKey() = %q, %q; want %q, %q", al.Key(), al.RedisKey(), name, prefix+name)
		}
		if err := al.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := s.get(t, prefix+name); ok {
			t.Fatal("the prefixed key is still there after the attached lock's Release")
		}
	})
}
