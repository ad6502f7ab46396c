package scripttest_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/goleak"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/driver"
	relockotel "github.com/relock-go/relock/otel"
	"github.com/relock-go/relock/otel/internal/harness"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The spans of a lock join the caller's trace (harness.SpanTree) on the
// script path too (miniredis); relockotel's own tests check the WATCH path.
func TestSpanTree(t *testing.T) { harness.SpanTree(t, miniredisConn(t, miniredis.RunT(t))) }

func miniredisConn(t *testing.T, m *miniredis.Miniredis) *goredis.Conn {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return goredis.New(rdb)
}

// countingConn is a goredis adapter that counts the scripts that ran and
// the subscriptions it opened, so a test knows when a waiter has queued.
type countingConn struct {
	*goredis.Conn
	scripts atomic.Int32
	subs    atomic.Int32
}

func (c *countingConn) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	r, err := c.Conn.EvalSha(ctx, sha1, keys, args...)
	if err == nil {
		c.scripts.Add(1)
	}
	return r, err
}

func (c *countingConn) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	r, err := c.Conn.Eval(ctx, script, keys, args...)
	if err == nil {
		c.scripts.Add(1)
	}
	return r, err
}

func (c *countingConn) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	c.subs.Add(1)
	return c.Conn.Subscribe(ctx, onMessage)
}

// A release hands the lock to a queued waiter: the waiter's relock.Obtain
// spans its whole wait, with handed_over, contended, two tries and its
// fence; relock.obtain.duration says contended; relock.key on the
// measurements with WithKeyAttribute(true).
func TestHandOver(t *testing.T) {
	m := miniredis.RunT(t)
	h := harness.New(t, relockotel.WithKeyAttribute(true))
	ctx := context.Background()
	holder, err := relock.New(miniredisConn(t, m), relock.WithObserver(h))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	held, err := holder.Obtain(ctx, "otel:handover", 10*time.Second, relock.WithFencing())
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingConn{Conn: miniredisConn(t, m)}
	waiter, err := relock.New(counted, relock.WithObserver(h), relock.WithRetry(relock.FixedRetry(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()
	type result struct {
		l   *relock.Lock
		err error
	}
	got := make(chan result, 1)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	go func() {
		l, err := waiter.Obtain(wctx, "otel:handover", 10*time.Second, relock.WithFencing())
		got <- result{l, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for counted.scripts.Load() < 2 || counted.subs.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the waiter did not subscribe and queue within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := r.l.Release(ctx); err != nil {
		t.Fatal(err)
	}

	key := relockotel.KeyAttr.String("otel:handover")
	for c, want := range map[bool]uint64{true: 1, false: 1} {
		if n, _ := h.Hist(t, "relock.obtain.duration", key, relockotel.ContendedAttr.Bool(c)); n != want {
			t.Errorf("relock.obtain.duration{contended=%v}: %d, want %d", c, n, want)
		}
	}
	if n, _ := h.Hist(t, "relock.hold.duration", key); n != 2 {
		t.Errorf("relock.hold.duration: %d, want 2", n)
	}
	var waited relock.Event
	for _, e := range h.All() {
		if e.Kind == relock.EventObtained && e.HandedOver {
			waited = e
		}
	}
	var handed []sdktrace.ReadOnlySpan
	for _, s := range h.Ended("relock.Obtain") {
		if v, _ := harness.Attr(s, relockotel.HandedOverAttr); v.AsBool() {
			handed = append(handed, s)
		}
	}
	if len(handed) != 1 {
		t.Fatalf("%d relock.Obtain spans with handed_over, want 1", len(handed))
	}
	s := handed[0]
	if !s.EndTime().Equal(waited.Time) || s.EndTime().Sub(s.StartTime()) != waited.Wait || waited.Wait <= 0 {
		t.Errorf("relock.Obtain span [%v, %v], want the wait %v ending %v", s.StartTime(), s.EndTime(), waited.Wait, waited.Time)
	}
	if v, _ := harness.Attr(s, relockotel.TriesAttr); v.AsInt64() != 2 {
		t.Errorf("relock.tries = %d, want 2", v.AsInt64())
	}
	if v, _ := harness.Attr(s, relockotel.ContendedAttr); !v.AsBool() {
		t.Error("relock.contended false on a hand-over")
	}
	if v, _ := harness.Attr(s, relockotel.FenceAttr); v.AsInt64() != r.l.Fence() || r.l.Fence() <= held.Fence() {
		t.Errorf("relock.fence = %d, want the waiter's %d (above the holder's %d)", v.AsInt64(), r.l.Fence(), held.Fence())
	}
}
