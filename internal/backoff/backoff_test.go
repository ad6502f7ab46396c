package backoff

import (
	"testing"
	"time"
)

func TestWaitDoublesUpToMaxAndStops(t *testing.T) {
	var b Backoff
	done := make(chan struct{})
	for _, want := range []time.Duration{2 * Min, 4 * Min, 8 * Min} {
		if !b.Wait(done) {
			t.Fatal("Wait returned false before done closed")
		}
		if b.next != want {
			t.Fatalf("next wait %v, want %v", b.next, want)
		}
	}
	b.next = Max
	if b.Wait(done); b.next != Max {
		t.Fatalf("next wait %v past Max", b.next)
	}
	b.Reset()
	if b.next != 0 {
		t.Fatal("Reset kept the wait")
	}
	close(done)
	b.next = time.Hour
	start := time.Now()
	if b.Wait(done) || time.Since(start) > time.Second {
		t.Fatal("Wait did not return at once after done closed")
	}
}
