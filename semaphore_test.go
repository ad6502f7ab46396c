package relock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/memdriver"
)

// TestSemaphoreRefusesBeforeSending: a Semaphore on a Client that cannot
// run scripts (the WATCH path) or on a quorum is ErrUnsupported, and an
// invalid limit or name ErrInvalidArgument, each before any command is
// sent.
func TestSemaphoreRefusesBeforeSending(t *testing.T) {
	ctx := context.Background()
	store := memdriver.New()
	c, err := relock.New(store.Conn())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stores := []*memdriver.Store{memdriver.New(), memdriver.New(), memdriver.New()}
	q, err := relock.NewQuorum([]driver.Conn{stores[0].Conn(), stores[1].Conn(), stores[2].Conn()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for name, cl := range map[string]*relock.Client{"watch": c, "quorum": q} {
		s := cl.Semaphore("jobs", 3)
		if _, err := s.Obtain(ctx, time.Second); !errors.Is(err, relock.ErrUnsupported) {
			t.Errorf("%s: Obtain: %v, want ErrUnsupported", name, err)
		}
		if _, err := s.TryObtain(ctx, time.Second); !errors.Is(err, relock.ErrUnsupported) {
			t.Errorf("%s: TryObtain: %v, want ErrUnsupported", name, err)
		}
		if _, err := s.Inspect(ctx); !errors.Is(err, relock.ErrUnsupported) {
			t.Errorf("%s: Inspect: %v, want ErrUnsupported", name, err)
		}
		if err := s.SetLimit(ctx, 2); !errors.Is(err, relock.ErrUnsupported) {
			t.Errorf("%s: SetLimit: %v, want ErrUnsupported", name, err)
		}
	}
	for _, n := range []int{0, -1} {
		if _, err := c.Semaphore("jobs", n).Obtain(ctx, time.Second); !errors.Is(err, relock.ErrInvalidArgument) {
			t.Errorf("limit %d: %v, want ErrInvalidArgument", n, err)
		}
	}
	for _, name := range []string{"", "a}b", "x}:relock:q:y"} {
		if _, err := c.Semaphore(name, 1).Obtain(ctx, time.Second); !errors.Is(err, relock.ErrInvalidArgument) {
			t.Errorf("name %q: %v, want ErrInvalidArgument", name, err)
		}
	}
	var nilSem *relock.Semaphore
	if _, err := nilSem.Obtain(ctx, time.Second); !errors.Is(err, relock.ErrInvalidArgument) {
		t.Errorf("nil semaphore: %v", err)
	}
	for _, st := range append(stores, store) {
		if n := st.Commands(); n != 0 {
			t.Errorf("%d commands sent", n)
		}
	}
}
