package conformance

import (
	"errors"
	"testing"
	"time"

	"github.com/relock-go/relock/driver"
)

// testHarness checks, through the driver alone, that each hook the harness
// sets does what Harness documents, before the other subtests rely on it.
func testHarness(t *testing.T, h Harness) {
	e := newEnv(t, h)
	c := e.conn()
	set := func(t *testing.T, k string) {
		t.Helper()
		if ok, err := c.SetNX(bg(), k, "v", time.Minute); !ok || err != nil {
			t.Fatalf("SetNX(%q) = %v, %v", k, ok, err)
		}
	}
	exists := func(t *testing.T, k string) bool {
		t.Helper()
		_, ok, err := c.Get(bg(), k)
		if err != nil {
			t.Fatalf("Get(%q): %v", k, err)
		}
		return ok
	}
	t.Run("Delete", func(t *testing.T) {
		if h.Delete == nil {
			t.Skip("Harness.Delete is nil")
		}
		a, b := e.key("a"), e.key("b")
		set(t, a)
		set(t, b)
		h.Delete(t, a)
		if exists(t, a) || !exists(t, b) {
			t.Fatalf("after Delete(a): a exists %v, b exists %v; want false, true", exists(t, a), exists(t, b))
		}
		h.Delete(t, a) // a missing key is no failure
		h.Delete(t, b)
	})
	t.Run("FlushAll", func(t *testing.T) {
		if h.FlushAll == nil {
			t.Skip("Harness.FlushAll is nil")
		}
		a := e.key("flushed")
		set(t, a)
		h.FlushAll(t)
		if exists(t, a) {
			t.Fatal("a key survived FlushAll")
		}
	})
	t.Run("PauseWrites", func(t *testing.T) {
		if h.PauseWrites == nil {
			t.Skip("Harness.PauseWrites is nil")
		}
		const d = 400 * time.Millisecond
		start := time.Now()
		h.PauseWrites(t, d)
		if took := time.Since(start); took > d/2 {
			t.Fatalf("PauseWrites took %v: it must return at once", took)
		}
		exists(t, e.key("read")) // reads pass
		if took := time.Since(start); took > d/2 {
			t.Fatalf("a read during PauseWrites waited %v", took)
		}
		set(t, e.key("paused"))
		if took := time.Since(start); took < d*3/4 {
			t.Fatalf("a write during PauseWrites(%v) went through after %v", d, took)
		}
	})
	t.Run("Replicas", func(t *testing.T) {
		w, ok := c.(driver.ReplicaWaiter)
		if !ok {
			t.Skip("driver does not implement driver.ReplicaWaiter")
		}
		const script = "return redis.call('SET', KEYS[1], ARGV[1], 'PX', 10000)"
		reply, acked, err := w.EvalWait(bg(), script, []string{e.key("waited")}, []string{"v"}, h.Replicas, time.Second)
		if errors.Is(err, errors.ErrUnsupported) {
			t.Skipf("the driver's ReplicaWaiter cannot serve this backend: %v", err)
		}
		if err != nil || reply != "OK" || acked < h.Replicas {
			t.Fatalf("EvalWait for %d replicas = %v, %d, %v; want OK, at least %d", h.Replicas, reply, acked, err, h.Replicas)
		}
		reply, acked, err = w.EvalWait(bg(), script, []string{e.key("waited")}, []string{"v"}, h.Replicas+1, 100*time.Millisecond)
		if err != nil || reply != "OK" || acked != h.Replicas {
			t.Fatalf("EvalWait for %d replicas = %v, %d, %v; want OK and Harness.Replicas = %d", h.Replicas+1, reply, acked, err, h.Replicas)
		}
	})
}
