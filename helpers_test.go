package relock_test

import (
	"context"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/memdriver"
)

// newClient returns a Client over conn, closed when t ends.
func newClient(t *testing.T, conn driver.Conn, opts ...relock.Option) *relock.Client {
	t.Helper()
	c, err := relock.New(conn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// ctxT returns a context that ends after d, or when t ends.
func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
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
