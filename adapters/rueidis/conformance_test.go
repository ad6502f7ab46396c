package rueidisadapter_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/rueidis"
	rueidisadapter "github.com/relock-go/relock/adapters/rueidis"
	"github.com/relock-go/relock/conformance"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/minitest"
)

// newConn is the conformance suite's NewConn: a fresh rueidis client to
// the server, closed when the subtest ends (the suite closes only the Conn,
// which leaves a user's client open).
func newConn(t *testing.T, b adaptertest.Backend) driver.Conn {
	return rueidisadapter.New(newClient(t, backend{addr: b.Addr}, func(o *rueidis.ClientOption) {
		if b.Advance != nil { // a miniredis: see backend.options
			o.DisableCache, o.ForceSingleClient = true, true
		}
	}))
}

// harness is the conformance harness over b.
func harness(b backend) conformance.Harness {
	ab := adaptertest.Backend{Addr: b.addr}
	if b.mini != nil {
		ab.Advance = b.mini.FastForward
	}
	return adaptertest.ServerHarness(ab, newConn)
}

func TestConformance(t *testing.T) {
	t.Run("miniredis", func(t *testing.T) { minitest.RunConformance(t, newConn, knownFailures) })
	adaptertest.RunConformanceKnown(t, newConn, adaptertest.Known{
		"redis":   knownFailures,
		"private": knownFailures,
	})
}

// knownFailures are what the conformance suite's tighter context checks
// (issue 21) found in this adapter; each is a pending fix in
// adapters/rueidis.
var knownFailures = map[string]string{
	// A dedicated rueidis connection waits for a reply until the
	// context's deadline, not its cancellation, in its synchronous mode
	// (pipe.syncDo sets the socket's deadline and reads): Watch with a
	// context cancelled while WATCH waits on a server that never answers,
	// and that has no deadline, does not return. Closing the dedicated
	// connection at the cancellation fixes that mode, but releasing a
	// connection on which rueidis itself gave up a cancelled command (its
	// pipelined mode, seen under -race) blocks in pipe.Close: the fix
	// needs more than the adapter's side.
	"Driver/Context/InFlight/Watch": "WATCH on a dedicated connection ignores a cancellation without a deadline (issue 21)",
	// Subscribe then Add on a server that never answers: Add returns at
	// its context's end, but the subscription's Close then takes about a
	// second: rueidis closes a connection whose peer is silent only after
	// a one-second timer (pipe.Close), and Close waits for that, as it
	// promises to wait for every goroutine of the subscription.
	"Driver/Context/Deadline/Subscribe": "Subscription.Close after an Add left unanswered takes about 1 s (issue 21)",
	"Driver/Context/InFlight/Subscribe": "Subscription.Close after an Add left unanswered takes about 1 s (issue 21)",
	"Driver/Network/Silent/Subscribe":   "Subscription.Close after an Add left unanswered takes about 1 s (issue 21)",
}

// TestHarness checks the hooks themselves, which conformance.Run will rely
// on: connections reach the same data, FlushScripts makes EVALSHA fail,
// SetWrongType plants a non-string, Advance expires keys.
func TestHarness(t *testing.T) {
	ctx := context.Background()
	eachBackend(t, func(t *testing.T, b backend) {
		h := harness(b)
		c1, c2 := h.NewConn(t), h.NewConn(t)
		defer c1.Close()
		defer c2.Close()
		key := newKey(t, newClient(t, b, nil))

		if ok, err := c1.SetNX(ctx, key, "one", 50*time.Millisecond); !ok || err != nil {
			t.Fatalf("SetNX on the first conn = %v, %v", ok, err)
		}
		if ok, err := c2.SetNX(ctx, key, "two", time.Second); ok || err != nil {
			t.Fatalf("SetNX on the second conn = %v, %v; want false, nil", ok, err)
		}

		if h.Advance != nil {
			h.Advance(t, 50*time.Millisecond)
		} else {
			time.Sleep(80 * time.Millisecond)
		}
		if _, ok, err := c2.Get(ctx, key); ok || err != nil {
			t.Fatalf("Get after the TTL = %v, %v; want a missing key", ok, err)
		}

		s := c1.(driver.Scripter)
		if _, err := s.Eval(ctx, "return 1", nil); err != nil {
			t.Fatal(err)
		}
		h.FlushScripts(t)
		if _, err := s.EvalSha(ctx, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", nil); !errIsNoScript(err) {
			t.Fatalf("EvalSha after FlushScripts: %v; want NOSCRIPT", err)
		}

		h.SetWrongType(t, key)
		if _, _, err := c2.Get(ctx, key); !errIsWrongType(err) {
			t.Fatalf("Get of the planted key: %v; want WRONGTYPE", err)
		}
	})
}

func errIsNoScript(err error) bool  { return errors.Is(err, driver.ErrNoScript) }
func errIsWrongType(err error) bool { return errors.Is(err, driver.ErrWrongType) }
