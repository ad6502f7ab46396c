package relock_test

import (
	"testing"
	"time"

	"github.com/relock-go/relock"
)

func TestNoRetry(t *testing.T) {
	if _, ok := relock.NoRetry().Backoff(1); ok {
		t.Fatal("NoRetry allowed a retry")
	}
}

func TestFixedRetry(t *testing.T) {
	s := relock.FixedRetry(7 * time.Millisecond)
	for n := 1; n < 100; n++ {
		if d, ok := s.Backoff(n); !ok || d != 7*time.Millisecond {
			t.Fatalf("Backoff(%d) = %v, %v; want 7ms, true", n, d, ok)
		}
	}
	if d, _ := relock.FixedRetry(-time.Second).Backoff(1); d != 0 {
		t.Fatalf("FixedRetry(-1s) waits %v, want 0", d)
	}
}

func TestExponentialRetry(t *testing.T) {
	s := relock.ExponentialRetry(2*time.Millisecond, 64*time.Millisecond)
	for n := 1; n <= 200; n++ {
		step := min(2*time.Millisecond<<min(n-1, 30), 64*time.Millisecond)
		for range 20 {
			d, ok := s.Backoff(n)
			if !ok {
				t.Fatalf("Backoff(%d) stopped", n)
			}
			if d < step/2 || d > step {
				t.Fatalf("Backoff(%d) = %v, want in [%v, %v]", n, d, step/2, step)
			}
		}
	}
	// Waits are spread out, so that waiters that failed together do not
	// retry together.
	seen := map[time.Duration]bool{}
	for range 100 {
		d, _ := s.Backoff(6)
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatalf("100 draws of Backoff(6) gave only %d distinct waits", len(seen))
	}
	// Out-of-range bounds are corrected, not trusted.
	if d, _ := relock.ExponentialRetry(0, -1).Backoff(1); d < 0 || d > time.Millisecond {
		t.Fatalf("ExponentialRetry(0, -1).Backoff(1) = %v, want within [0, 1ms]", d)
	}
	if d, _ := s.Backoff(0); d < time.Millisecond || d > 2*time.Millisecond {
		t.Fatalf("Backoff(0) = %v, want it treated as Backoff(1)", d)
	}
}

func TestLimitRetry(t *testing.T) {
	s := relock.LimitRetry(relock.FixedRetry(time.Millisecond), 3)
	for n := 1; n <= 3; n++ {
		if _, ok := s.Backoff(n); !ok {
			t.Fatalf("Backoff(%d) stopped before the limit of 3", n)
		}
	}
	if _, ok := s.Backoff(4); ok {
		t.Fatal("Backoff(4) went past the limit of 3")
	}
	if _, ok := relock.LimitRetry(relock.FixedRetry(time.Millisecond), -1).Backoff(1); ok {
		t.Fatal("LimitRetry(..., -1) allowed a retry")
	}
	// The limit never extends a strategy that stopped.
	if _, ok := relock.LimitRetry(relock.NoRetry(), 5).Backoff(1); ok {
		t.Fatal("LimitRetry(NoRetry(), 5) allowed a retry")
	}
}

func TestDefaultRetryWaits(t *testing.T) {
	d, ok := relock.DefaultRetry().Backoff(1)
	if !ok || d <= 0 {
		t.Fatalf("DefaultRetry().Backoff(1) = %v, %v; want a wait", d, ok)
	}
	if _, ok := relock.DefaultRetry().Backoff(10000); !ok {
		t.Fatal("DefaultRetry stops; it should wait until the context ends")
	}
}
