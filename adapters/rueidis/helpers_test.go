package rueidisadapter_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/redis/rueidis"
	"go.uber.org/goleak"

	"github.com/relock-go/relock/internal/testkit/testredis"
)

// TestMain fails the run if any test leaves goroutines behind: every
// rueidis client, owned or not, must have been closed.
//
// One rueidis goroutine is let go: when rueidis.NewClient fails to reach a
// server (the unreachable DSN of TestOpen/BadDSN), the cluster client it
// tries first schedules a topology refresh that sleeps for a random delay
// below about a second and then ends on its own; there is no client left
// to close.
//
// Another is the cluster client's delayed close of connections that a
// topology refresh replaced (cluster.go, _refresh): it sleeps 5 s, closes
// them and ends, even after the client was closed. It outlives the
// cluster tests when they run last (go test -run 'Conformance/Wake').
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
	)
}

// backend is one server the tests run against.
type backend struct{ addr string }

// onRedis runs f as the subtest "redis" on the shared real server of
// testredis (skipped when absent, unless RELOCK_REQUIRE_REDIS is set). The
// runs on miniredis are in internal/onmini.
func onRedis(t *testing.T, f func(t *testing.T, b backend)) {
	t.Helper()
	t.Run("redis", func(t *testing.T) { f(t, backend{addr: testredis.Addr(t)}) })
}

// options returns the client options for b: the rueidis defaults,
// client-side cache included, as most users have them.
func (b backend) options() rueidis.ClientOption {
	return rueidis.ClientOption{InitAddress: []string{b.addr}}
}

// newClient returns a rueidis client for b, closed when t ends. edit, if
// not nil, adjusts the options first.
func newClient(t testing.TB, b backend, edit func(*rueidis.ClientOption)) rueidis.Client {
	t.Helper()
	opt := b.options()
	if edit != nil {
		edit(&opt)
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatalf("rueidis.NewClient(%s): %v", b.addr, err)
	}
	t.Cleanup(c.Close)
	return c
}

// newKey returns a key no other test, nor another run on the shared
// server, uses. The real server is never flushed; keys are deleted when t
// ends.
func newKey(t testing.TB, c rueidis.Client) string {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	k := "relock-test:rueidis:" + hex.EncodeToString(b[:])
	t.Cleanup(func() { c.Do(context.Background(), c.B().Del().Key(k).Build()) })
	return k
}

// do runs a raw command through c and fails t on an error reply.
func do(t testing.TB, c rueidis.Client, cmd ...string) rueidis.RedisMessage {
	t.Helper()
	m, err := c.Do(context.Background(), c.B().Arbitrary(cmd...).Build()).ToMessage()
	if err != nil && !rueidis.IsRedisNil(err) {
		t.Fatalf("%v: %v", cmd, err)
	}
	return m
}

// setHash makes key hold a hash, a value that is not a string.
func setHash(t testing.TB, c rueidis.Client, key string) {
	t.Helper()
	do(t, c, "HSET", key, "f", "v")
}
