package onmini_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/rueidis"
	"go.uber.org/goleak"

	"github.com/relock-go/relock"
	rueidisadapter "github.com/relock-go/relock/adapters/rueidis"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/minitest"
)

// TestMain fails the run if a test leaves goroutines behind. The cluster
// client that rueidis builds on miniredis closes the connections a
// topology refresh replaced after 5 s, even once closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
	)
}

// options are the client options for miniredis: it has no CLIENT TRACKING
// (rueidis.NewClient fails with ErrNoCache unless DisableCache is set) and
// answers CLUSTER SLOTS (rueidis builds a cluster client unless
// ForceSingleClient is set).
func options(addr string) rueidis.ClientOption {
	return rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true, ForceSingleClient: true}
}

// newClient returns a rueidis client to miniredis at addr, closed when t
// ends.
func newClient(t *testing.T, opt rueidis.ClientOption) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatalf("rueidis.NewClient(%v): %v", opt.InitAddress, err)
	}
	t.Cleanup(c.Close)
	return c
}

// newConn is the conformance suite's NewConn; the suite's fake servers
// stand for miniredis, so every connection gets its options.
func newConn(t *testing.T, b adaptertest.Backend) driver.Conn {
	return rueidisadapter.New(newClient(t, options(b.Addr)))
}

func TestConformance(t *testing.T) {
	minitest.RunConformance(t, newConn, nil)
}

// TestNeedsDisableCache documents why the clients here set DisableCache:
// rueidis turns on CLIENT TRACKING, which miniredis does not know.
func TestNeedsDisableCache(t *testing.T) {
	m := miniredis.RunT(t)
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{m.Addr()}, ForceSingleClient: true})
	if err == nil {
		c.Close()
		t.Skip("this miniredis accepts CLIENT TRACKING; DisableCache is no longer needed")
	}
	if !errors.Is(err, rueidis.ErrNoCache) {
		t.Fatalf("NewClient without DisableCache: %v; want rueidis.ErrNoCache", err)
	}
}

// TestClusterClient runs relock over the cluster client that rueidis
// builds on miniredis (which answers CLUSTER SLOTS), as Driver.Open does,
// on both paths, and checks that a command over keys of several slots,
// on which the rueidis builder panics, is an error instead.
func TestClusterClient(t *testing.T) {
	ctx := context.Background()
	m := miniredis.RunT(t)
	conn, err := rueidisadapter.Driver{}.Open("redis://" + m.Addr() + "/0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	type watchOnly struct {
		driver.Conn
		driver.Watcher
	}
	for name, c := range map[string]driver.Conn{"scripts": conn, "watch": watchOnly{conn, conn.(driver.Watcher)}} {
		locks, err := relock.New(c)
		if err != nil {
			t.Fatal(err)
		}
		lock, err := locks.Obtain(ctx, "onmini:"+name, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: Obtain: %v", name, err)
		}
		if _, err := locks.TryObtain(ctx, "onmini:"+name, time.Second); !errors.Is(err, relock.ErrNotObtained) {
			t.Fatalf("%s: TryObtain of a held lock: %v", name, err)
		}
		if err := lock.Release(ctx); err != nil {
			t.Fatalf("%s: Release: %v", name, err)
		}
	}
	_, err = conn.(driver.Scripter).Eval(ctx, "return 1", []string{"a", "b"})
	if err == nil || !strings.Contains(err.Error(), "cannot build") {
		t.Errorf("cross-slot Eval on a cluster client: %v; want a build error", err)
	}
	err = conn.(driver.Watcher).Watch(ctx, []string{"a", "b"}, func(driver.Tx) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "cannot build") {
		t.Errorf("cross-slot Watch on a cluster client: %v; want a build error", err)
	}
}

// TestWaitZero runs EvalShaWait and EvalWait on miniredis, whose WAIT
// answers 0 at once.
func TestWaitZero(t *testing.T) {
	m := miniredis.RunT(t)
	c := newClient(t, options(m.Addr()))
	if _, err := c.Do(context.Background(), c.B().ScriptLoad().Script(adaptertest.SetScript).Build()).ToString(); err != nil {
		t.Fatal(err)
	}
	adaptertest.CheckWaitZero(t, context.Background(), rueidisadapter.New(c), "k", nil)
}
