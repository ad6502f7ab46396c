package scripttest_test

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/relock-go/relock"
	relockotel "github.com/relock-go/relock/otel"
	"github.com/relock-go/relock/otel/internal/harness"
)

// A semaphore's permits are measured and traced as locks are: the holder's
// permit and a waiter's, handed over by the holder's release, give two
// relock.obtain.duration measurements (one contended) and two
// relock.hold.duration ones on the semaphore's key, and the waiter's
// relock.Obtain span says handed_over.
func TestSemaphorePermits(t *testing.T) {
	m := miniredis.RunT(t)
	h := harness.New(t, relockotel.WithKeyAttribute(true))
	ctx := context.Background()
	holder, err := relock.New(miniredisConn(t, m), relock.WithObserver(h))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	held, err := holder.Semaphore("otel:sem", 1).Obtain(ctx, 10*time.Second)
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
		l, err := waiter.Semaphore("otel:sem", 1).Obtain(wctx, 10*time.Second)
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
	key := relockotel.KeyAttr.String("otel:sem")
	for c, want := range map[bool]uint64{true: 1, false: 1} {
		if n, _ := h.Hist(t, "relock.obtain.duration", key, relockotel.ContendedAttr.Bool(c)); n != want {
			t.Errorf("relock.obtain.duration{contended=%v}: %d, want %d", c, n, want)
		}
	}
	if n, _ := h.Hist(t, "relock.hold.duration", key); n != 2 {
		t.Errorf("relock.hold.duration: %d, want 2", n)
	}
	handed := 0
	for _, s := range h.Ended("relock.Obtain") {
		if v, _ := harness.Attr(s, relockotel.HandedOverAttr); v.AsBool() {
			handed++
		}
	}
	if handed != 1 {
		t.Fatalf("%d relock.Obtain spans with handed_over, want 1", handed)
	}
}
