package relock_test

// Issue 15.4: New refuses a prefix whose locks could not keep their keys
// in one slot, and a prefixed lock's companions are reserved names. The
// keys themselves are checked in keys_test.go.

import (
	"errors"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/memdriver"
)

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
