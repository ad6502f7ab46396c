// Package failover holds what the adapters' failover tests share: a probe
// that measures how long a fault keeps locks from working, and loggers of
// what became of a lock held across it. It asserts little: failovers are
// observed, and their numbers go in docs/topologies.md.
package failover

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// SkipShort skips t in -short mode: failover tests start clusters or
// sentinels and wait for failovers.
func SkipShort(t *testing.T) {
	t.Helper()
	testredis.SkipShort(t, "starts a Redis Cluster or Sentinel and waits for failovers")
}

// Probe runs TryObtain then Release on fresh keys, from its own
// goroutine, again and again (each try bounded by a second, 20 ms apart),
// and records when tries fail: how long a fault keeps locks from working.
type Probe struct {
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	tries []try
}

type try struct {
	end time.Time
	err error
}

// StartProbe starts probing now, with the keys key(0), key(1)...
func StartProbe(lc *relock.Client, key func(i int) string) *Probe {
	p := &Probe{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			l, err := lc.TryObtain(ctx, key(i), 10*time.Second)
			if err == nil {
				if err = l.Release(ctx); err != nil {
					err = fmt.Errorf("release: %w", err)
				}
			}
			cancel()
			p.mu.Lock()
			p.tries = append(p.tries, try{time.Now(), err})
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return p
}

// Outage is what an Probe saw.
type Outage struct {
	Tries, Failed int
	FirstFail     time.Duration // when the first failed try ended, after the fault
	Recovered     time.Duration // when the first good try after the last failed one ended, after the fault; -1: none
	Errs          string        // the errors, counted
}

func (o Outage) String() string {
	if o.Failed == 0 {
		return fmt.Sprintf("no failed try of %d", o.Tries)
	}
	rec := "still failing when the probe stopped"
	if o.Recovered >= 0 {
		rec = fmt.Sprintf("working again %v after the fault", o.Recovered.Round(time.Millisecond))
	}
	return fmt.Sprintf("%d of %d tries failed, the first %v after the fault; %s; errors: %s",
		o.Failed, o.Tries, o.FirstFail.Round(time.Millisecond), rec, o.Errs)
}

// finish waits, up to limit, for a good try that ended after now (the
// fault is over on the server's side), stops the probe and returns what it
// saw, with times measured from fault.
func (p *Probe) Finish(fault time.Time, limit time.Duration) Outage {
	mark := time.Now()
	deadline := mark.Add(limit)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		n := len(p.tries)
		ok := n > 0 && p.tries[n-1].err == nil && p.tries[n-1].end.After(mark)
		p.mu.Unlock()
		if ok {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(p.stop)
	<-p.done
	o := Outage{Tries: len(p.tries), Recovered: -1}
	seen := map[string]int{}
	lastFail := -1
	for i, tr := range p.tries {
		if tr.err != nil {
			if o.Failed == 0 {
				o.FirstFail = tr.end.Sub(fault)
			}
			o.Failed++
			seen[errText(tr.err)]++
			lastFail = i
		}
	}
	if lastFail+1 < len(p.tries) {
		o.Recovered = p.tries[lastFail+1].end.Sub(fault)
	}
	o.Errs = countErrs(seen)
	return o
}

// errText drops the varying parts (keys, ports) of an error.
func errText(err error) string {
	s := err.Error()
	if i := strings.Index(s, "127.0.0.1:"); i >= 0 {
		j := i + len("127.0.0.1:")
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		s = s[:i] + "127.0.0.1:P" + s[j:]
	}
	if i := strings.Index(s, `"`); i >= 0 {
		if j := strings.Index(s[i+1:], `"`); j >= 0 {
			s = s[:i] + "KEY" + s[i+j+2:]
		}
	}
	return s
}

func countErrs(seen map[string]int) string {
	if len(seen) == 0 {
		return "none"
	}
	var out []string
	for e, n := range seen {
		out = append(out, fmt.Sprintf("%dx %q", n, e))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// Reobtain tries to obtain l's key again, with fencing, once l has been
// released or lost, and logs the result and the fencing numbers before and
// after the fault: a fencing counter lost with the primary starts again.
func Reobtain(t *testing.T, lc *relock.Client, l *relock.Lock) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l2, err := lc.Obtain(ctx, l.Key(), time.Minute, relock.WithFencing(), relock.WithRetry(relock.NoRetry()))
	if err != nil {
		t.Logf("Obtain of the key again: %v", err)
		return
	}
	t.Logf("fencing number before the fault %d, after %d", l.Fence(), l2.Fence())
	if err := l2.Release(ctx); err != nil {
		t.Errorf("Release of the lock obtained again: %v", err)
	}
}

// LogLockFate records, with t.Logf, what became of l across a failover:
// what the key holds now (read with get, a driver.Conn's Get), then what
// TTL and Release answer. It asserts nothing.
func LogLockFate(t *testing.T, what string, get func(context.Context, string) (string, bool, error), l *relock.Lock) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, ok, err := get(ctx, l.Key())
	switch {
	case err != nil:
		t.Logf("%s: GET failed: %v", what, err)
	case !ok:
		t.Logf("%s: the key is gone", what)
	case v == l.Token():
		t.Logf("%s: the key still holds our token", what)
	default:
		t.Logf("%s: the key holds another token %q", what, v)
	}
	ttl, err := l.TTL(ctx)
	t.Logf("%s: Lock.TTL = %v, %v", what, ttl.Round(time.Millisecond), err)
	t.Logf("%s: Lock.Release = %v", what, l.Release(ctx))
}

func Rand() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
