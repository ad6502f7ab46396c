package conformance_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	redigo "github.com/relock-go/relock/adapters/redigo"
	"github.com/relock-go/relock/conformance"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/memdriver"
	"github.com/relock-go/relock/internal/testkit/minitest"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// The suite must be able to fail. Each broken driver below wraps a working
// one (a base) and adds one plausible bug; TestSuiteCatchesBrokenDrivers
// runs the suite against it in a child process and checks that the
// subtests named for that bug fail. For each base, it also runs the same
// subtests against the base itself and checks that they pass (not skip):
// the failures come from the bug, not from the base or the backend.
//
// The bases:
//   - mem: internal/testkit/memdriver (Conn and Watcher only).
//   - mini: the redigo adapter on a miniredis (every capability), with
//     Publish and a NewSilentConn to conformance.SilentServer.
//   - replica: the redigo adapter on a private redis-server with one
//     replica, with StallReplicas; skipped without a redis-server binary.

const brokenEnv = "RELOCK_CONFORMANCE_BROKEN_DRIVER"

// base is a working backend that broken drivers wrap.
type base struct {
	// harness returns the harness of the working driver, and the address
	// of its server ("" for mem).
	harness func(t *testing.T) (conformance.Harness, string)
}

var bases = map[string]base{
	"mem": {harness: func(t *testing.T) (conformance.Harness, string) {
		store := memdriver.New()
		return conformance.Harness{
			NewConn:      func(*testing.T) driver.Conn { return store.Conn() },
			Advance:      func(_ *testing.T, d time.Duration) { store.Advance(d) },
			SetWrongType: func(_ *testing.T, key string) { store.SetHash(key) },
		}, ""
	}},
	"mini": {harness: func(t *testing.T) (conformance.Harness, string) {
		h := minitest.Harness(t, newRedigo)
		return h, ""
	}},
	"replica": {harness: func(t *testing.T) (conformance.Harness, string) {
		h, primary := adaptertest.PrivateHarness(t, newRedigo)
		// Only what the replica broken drivers need: the rest of the
		// suite runs on a private server in the adapters' tests.
		return conformance.Harness{
			NewConn:       h.NewConn,
			Replicas:      h.Replicas,
			StallReplicas: h.StallReplicas,
			Addr:          h.Addr,
			NewConnTo:     h.NewConnTo,
		}, primary.Addr()
	}},
}

func newRedigo(t *testing.T, b adaptertest.Backend) driver.Conn {
	p := &redis.Pool{
		MaxIdle: 8,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", b.Addr)
		},
	}
	t.Cleanup(func() { _ = p.Close() })
	return redigo.New(p)
}

// brokenDriver is one bug on a base.
type brokenDriver struct {
	base string
	// wrap adds the bug to a connection of the base; addr is the base's
	// server address, if it has one.
	wrap     func(c driver.Conn, addr string) driver.Conn
	mustFail []string
	// mustSay are texts the failures must print: the check that caught
	// the bug names it, so the failure is not one of the base's.
	mustSay []string
}

var brokenDrivers = map[string]brokenDriver{
	// On memdriver.
	"IgnoresTTL": {base: "mem",
		wrap: memWrap(func(b broken) driver.Conn { return &ignoresTTL{b} }),
		mustFail: []string{
			"Driver/SetNXExpires",
			"Obtain/Takeover/Watch",
			"Release/AfterExpiry/Watch",
		},
	},
	"StaleGetInTx": {base: "mem",
		wrap: memWrap(func(b broken) driver.Conn { return &staleGet{broken: b, seen: map[string]string{}} }),
		mustFail: []string{
			"Release/ByNonOwner/Watch",
			"Refresh/ByNonOwner/Watch",
		},
	},
	"HidesWrongType": {base: "mem",
		wrap: memWrap(func(b broken) driver.Conn { return &hidesWrongType{b} }),
		mustFail: []string{
			"Driver/WrongType",
			"WrongType/Watch",
		},
	},
	"IntReplies": {base: "mem",
		wrap: memWrap(func(b broken) driver.Conn { return &intReplies{b} }),
		mustFail: []string{
			"Driver/Watcher/Exec",
			"Release/ByOwner/Watch",
			"TTL/ByOwner/Watch",
		},
	},
	"IgnoresAbort": {base: "mem",
		wrap:     memWrap(func(b broken) driver.Conn { return &ignoresAbort{b} }),
		mustFail: []string{"Driver/Watcher/Aborted"},
	},
	"NeitherPath": {base: "mem",
		wrap:     func(c driver.Conn, _ string) driver.Conn { return connOnly{c} },
		mustFail: []string{"Driver/ScripterOrWatcher"},
	},
	"CrossedReplies": {base: "mem",
		wrap:     memWrap(func(b broken) driver.Conn { return &crossedReplies{broken: b} }),
		mustFail: []string{"Driver/ConcurrentUse"},
	},
	"IgnoresContext": {base: "mem",
		wrap: memWrap(func(b broken) driver.Conn { return &ignoresContext{b} }),
		mustFail: []string{
			"Driver/Context/Cancelled/SetNX",
			"Driver/Context/Cancelled/Get",
			"Driver/Context/Cancelled/Watch",
			"Driver/Context/Cancelled/TxGet",
			"Driver/Context/Cancelled/TxExec",
		},
	},
	"PanicsAfterClose": {base: "mem",
		wrap: func(c driver.Conn, _ string) driver.Conn { return &panicsAfterClose{c: c} },
		mustFail: []string{
			"Driver/AfterClose/SetNX",
			"Driver/AfterClose/Get",
			"Driver/AfterClose/Watch",
		},
	},
	"WorksAfterClose": {base: "mem",
		wrap: memWrap(func(b broken) driver.Conn { return &worksAfterClose{b} }),
		mustFail: []string{
			"Driver/AfterClose/SetNX",
			"Driver/AfterClose/Get",
			"Driver/AfterClose/Watch",
		},
	},
	"TxHidesWrongType": {base: "mem",
		wrap:     memWrap(func(b broken) driver.Conn { return &txHidesWrongType{b} }),
		mustFail: []string{"Driver/Watcher/GetWrongType"},
	},
	"ExecErrorAsAborted": {base: "mem",
		wrap: memWrap(func(b broken) driver.Conn { return &execErrorAsAborted{b} }),
		mustFail: []string{
			"Driver/Watcher/ErrorInsideExec",
			"Driver/Watcher/QueueError",
		},
	},
	"ExecErrorAsNilReply": {base: "mem",
		wrap:     memWrap(func(b broken) driver.Conn { return &execErrorAsNil{b} }),
		mustFail: []string{"Driver/Watcher/ErrorInsideExec"},
	},
	"IgnoresExpiryInWatch": {base: "mem",
		wrap:     memWrap(func(b broken) driver.Conn { return &ignoresExpiryInWatch{b} }),
		mustFail: []string{"Driver/Watcher/ExpiryAborts"},
	},
	"MissingKeyIsAnError": {base: "mem",
		wrap:     memWrap(func(b broken) driver.Conn { return &missingIsError{b} }),
		mustFail: []string{"Driver/GetMissing"},
	},
	"CloseTwicePanics": {base: "mem",
		wrap:     memWrap(func(b broken) driver.Conn { return &closeTwicePanics{broken: b, done: make(chan struct{})} }),
		mustFail: []string{"Driver/CloseTwice"},
	},
	"DropsFnError": {base: "mem",
		wrap:     memWrap(func(b broken) driver.Conn { return &dropsFnError{b} }),
		mustFail: []string{"Driver/Watcher/FnError"},
	},
	"DropsSetOptions": {base: "mem",
		wrap:     memWrap(func(b broken) driver.Conn { return &dropsSetOptions{b} }),
		mustFail: []string{"Driver/Watcher/RelockCommands"},
	},

	// On the redigo adapter and miniredis.
	"NoScriptByWord": {base: "mini",
		wrap:     fullWrap(func(f full) driver.Conn { return &noScriptByWord{f} }),
		mustFail: []string{"Driver/Scripter/ScriptErrorIsNotNoScript"},
	},
	"ScriptsIgnoreContext": {base: "mini",
		wrap: fullWrap(func(f full) driver.Conn { return &scriptsIgnoreContext{f} }),
		mustFail: []string{
			"Driver/Context/Cancelled/Eval",
			"Driver/Context/Cancelled/EvalSha",
			"Driver/Context/Cancelled/EvalShaWait",
			"Driver/Context/Cancelled/EvalWait",
			"Driver/Context/Cancelled/Subscribe",
			"Driver/Context/Cancelled/SubscriptionAdd",
		},
	},
	"IgnoresDeadline": {base: "mini",
		wrap: fullWrap(func(f full) driver.Conn { return &ignoresDeadline{f} }),
		mustFail: []string{
			"Driver/Context/Deadline/SetNX",
			"Driver/Context/Deadline/Get",
			"Driver/Context/Deadline/Eval",
			"Driver/Context/Deadline/EvalSha",
			"Driver/Context/Deadline/EvalShaWait",
			"Driver/Context/Deadline/EvalWait",
			"Driver/Context/Deadline/Watch",
			"Driver/Context/Deadline/Subscribe",
		},
	},
	"ScriptsWorkAfterClose": {base: "mini",
		wrap: fullWrap(func(f full) driver.Conn { return &scriptsWorkAfterClose{f} }),
		mustFail: []string{
			"Driver/AfterClose/Eval",
			"Driver/AfterClose/EvalSha",
			"Driver/AfterClose/EvalShaWait",
			"Driver/AfterClose/EvalWait",
			"Driver/AfterClose/Subscribe",
		},
	},
	"WaitHidesNoScript": {base: "mini",
		wrap:     fullWrap(func(f full) driver.Conn { return &waitHidesNoScript{f} }),
		mustFail: []string{"Driver/ReplicaWaiter/NoScript"},
	},
	"AddReturnsEarly": {base: "mini",
		wrap:     fullWrap(func(f full) driver.Conn { return &subBug{full: f, bug: bugAddEarly} }),
		mustFail: []string{"Driver/Subscriber/DeliversAfterAdd"},
	},
	"DropsEveryOtherMessage": {base: "mini",
		wrap: fullWrap(func(f full) driver.Conn { return &subBug{full: f, bug: bugDropHalf} }),
		mustFail: []string{
			"Driver/Subscriber/NoLossInOrder",
			"Wake/FIFO/Script",
		},
	},
	"RemoveDoesNothing": {base: "mini",
		wrap:     fullWrap(func(f full) driver.Conn { return &subBug{full: f, bug: bugNoRemove} }),
		mustFail: []string{"Driver/Subscriber/RemoveUnsubscribes"},
	},
	"ConcurrentCallbacks": {base: "mini",
		wrap:     fullWrap(func(f full) driver.Conn { return &subBug{full: f, bug: bugConcurrent} }),
		mustFail: []string{"Driver/Subscriber/OneCallbackAtATime"},
	},
	"CloseKeepsSubscription": {base: "mini",
		wrap: fullWrap(func(f full) driver.Conn { return &subBug{full: f, bug: bugCloseNothing} }),
		mustFail: []string{
			"Driver/Subscriber/CloseStopsDelivery",
			"Driver/Subscriber/CloseEndsGoroutines",
		},
	},
	"CloseDoesNotWait": {base: "mini",
		wrap:     fullWrap(func(f full) driver.Conn { return &subBug{full: f, bug: bugCloseAsync} }),
		mustFail: []string{"Driver/Subscriber/CloseWaitsForCallback"},
	},

	// On the redigo adapter and a private server with a replica.
	"WaitOnOtherConnection": {base: "replica",
		wrap: func(c driver.Conn, addr string) driver.Conn {
			return &waitElsewhere{full: newFull(c), addr: addr}
		},
		mustFail: []string{"Driver/ReplicaWaiter/SameConnection"},
	},
}

// controlName is the name under which the child runs a base unbroken.
func controlName(base string) string { return "Working/" + base }

// TestBrokenDriver runs the suite against the broken driver (or the
// working base, "Working/<base>") named by $RELOCK_CONFORMANCE_BROKEN_DRIVER;
// a broken one is meant to fail. It runs only as the child process of
// TestSuiteCatchesBrokenDrivers.
func TestBrokenDriver(t *testing.T) {
	name := os.Getenv(brokenEnv)
	if name == "" {
		t.Skip("runs only as a child of TestSuiteCatchesBrokenDrivers")
	}
	var bd brokenDriver
	if b, ok := strings.CutPrefix(name, "Working/"); ok {
		bd = brokenDriver{base: b, wrap: func(c driver.Conn, _ string) driver.Conn { return c }}
	} else if bd, ok = brokenDrivers[name]; !ok {
		t.Fatalf("unknown broken driver %q", name)
	}
	b, ok := bases[bd.base]
	if !ok {
		t.Fatalf("unknown base %q", bd.base)
	}
	h, addr := b.harness(t)
	newConn, newSilent, newConnTo := h.NewConn, h.NewSilentConn, h.NewConnTo
	h.NewConn = func(t *testing.T) driver.Conn { return bd.wrap(newConn(t), addr) }
	if newSilent != nil {
		h.NewSilentConn = func(t *testing.T) driver.Conn { return bd.wrap(newSilent(t), addr) }
	}
	if newConnTo != nil {
		// A broken driver that dials on its own dials where it was sent.
		h.NewConnTo = func(t *testing.T, to string) driver.Conn { return bd.wrap(newConnTo(t, to), to) }
	}
	conformance.Run(t, h)
}

func TestSuiteCatchesBrokenDrivers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite in child processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The subtests each base must pass: every one a broken driver on it
	// must fail.
	control := map[string][]string{}
	for _, bd := range brokenDrivers {
		control[bd.base] = append(control[bd.base], bd.mustFail...)
	}
	// At most two children at a time: each runs a suite.
	sem := make(chan struct{}, 2)
	child := func(t *testing.T, name string, subtests []string) (string, bool) {
		sem <- struct{}{}
		defer func() { <-sem }()
		cmd := exec.Command(exe, "-test.run="+runPattern(subtests), "-test.v", "-test.count=1", "-test.timeout=5m")
		cmd.Env = append(os.Environ(), brokenEnv+"="+name)
		out, err := cmd.CombinedOutput()
		if strings.Contains(string(out), "--- SKIP: TestBrokenDriver ") {
			if testredis.Required() {
				t.Fatalf("the child skipped although RELOCK_REQUIRE_REDIS is set:\n%s", out)
			}
			t.Skipf("the base is not available here:\n%s", lastLines(string(out), 5))
		}
		return string(out), err == nil
	}
	for b, subtests := range control {
		t.Run(controlName(b), func(t *testing.T) {
			t.Parallel()
			subtests := uniq(subtests)
			out, passed := child(t, controlName(b), subtests)
			if !passed {
				t.Errorf("the working base %s failed the subtests its broken drivers must fail", b)
			}
			for _, sub := range subtests {
				if !strings.Contains(out, "--- PASS: TestBrokenDriver/"+sub+" ") {
					t.Errorf("subtest %s did not pass on the working base %s", sub, b)
				}
			}
			if t.Failed() {
				t.Logf("child output:\n%s", out)
			}
		})
	}
	for name, bd := range brokenDrivers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, passed := child(t, name, bd.mustFail)
			if passed {
				t.Fatalf("the suite passed a driver that %s:\n%s", name, out)
			}
			for _, sub := range bd.mustFail {
				if !strings.Contains(out, "--- FAIL: TestBrokenDriver/"+sub+" ") {
					t.Errorf("subtest %s did not fail for a driver that %s", sub, name)
				}
			}
			for _, text := range bd.mustSay {
				if !strings.Contains(out, text) {
					t.Errorf("no failure said %q for a driver that %s", text, name)
				}
			}
			if t.Failed() {
				t.Logf("child output:\n%s", out)
			}
		})
	}
}

// runPattern is a -test.run pattern that selects at least the subtests
// named (and perhaps a few more: each level is an alternation).
func runPattern(subtests []string) string {
	var levels []map[string]bool
	for _, s := range subtests {
		for i, part := range strings.Split(s, "/") {
			if i == len(levels) {
				levels = append(levels, map[string]bool{})
			}
			levels[i][part] = true
		}
	}
	parts := []string{"^TestBrokenDriver$"}
	for _, l := range levels {
		var alts []string
		for p := range l {
			alts = append(alts, regexp.QuoteMeta(p))
		}
		sort.Strings(alts)
		parts = append(parts, "^("+strings.Join(alts, "|")+")$")
	}
	return strings.Join(parts, "/")
}

func uniq(ss []string) []string {
	ss = slices.Clone(ss)
	slices.Sort(ss)
	return slices.Compact(ss)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// --- Broken drivers on memdriver: Conn and Watcher. ---

// broken passes everything to a working in-memory driver.
type broken struct{ c driver.Conn }

func memWrap(f func(broken) driver.Conn) func(driver.Conn, string) driver.Conn {
	return func(c driver.Conn, _ string) driver.Conn { return f(broken{c}) }
}

func (b broken) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	return b.c.SetNX(ctx, key, value, ttl)
}
func (b broken) Get(ctx context.Context, key string) (string, bool, error) { return b.c.Get(ctx, key) }
func (b broken) Close() error                                              { return b.c.Close() }
func (b broken) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return b.c.(driver.Watcher).Watch(ctx, keys, fn)
}

// watchTx runs b's Watch with fn's Tx wrapped by wrap.
func (b broken) watchTx(ctx context.Context, keys []string, fn func(driver.Tx) error, wrap func(driver.Tx) driver.Tx) error {
	return b.Watch(ctx, keys, func(tx driver.Tx) error { return fn(wrap(tx)) })
}

// ignoresTTL sets keys without expiry.
type ignoresTTL struct{ broken }

func (b *ignoresTTL) SetNX(ctx context.Context, key, value string, _ time.Duration) (bool, error) {
	return b.c.SetNX(ctx, key, value, 365*24*time.Hour)
}

// staleGet answers GET inside a transaction from what this connection
// wrote before: a client-side cache gone wrong, so the owner check is void.
type staleGet struct {
	broken
	mu   sync.Mutex
	seen map[string]string
}

func (b *staleGet) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	ok, err := b.c.SetNX(ctx, key, value, ttl)
	if ok {
		b.mu.Lock()
		b.seen[key] = value
		b.mu.Unlock()
	}
	return ok, err
}

func (b *staleGet) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return b.watchTx(ctx, keys, fn, func(tx driver.Tx) driver.Tx { return staleTx{tx, b} })
}

type staleTx struct {
	driver.Tx
	b *staleGet
}

func (t staleTx) Get(ctx context.Context, key string) (string, bool, error) {
	t.b.mu.Lock()
	v, ok := t.b.seen[key]
	t.b.mu.Unlock()
	if ok {
		return v, true, nil
	}
	return t.Tx.Get(ctx, key)
}

// hidesWrongType reports a key of another type as missing.
type hidesWrongType struct{ broken }

func (b *hidesWrongType) Get(ctx context.Context, key string) (string, bool, error) {
	v, ok, err := b.c.Get(ctx, key)
	if errors.Is(err, driver.ErrWrongType) {
		return "", false, nil
	}
	return v, ok, err
}

// intReplies maps integer replies to int, not int64.
type intReplies struct{ broken }

func (b *intReplies) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return b.watchTx(ctx, keys, fn, func(tx driver.Tx) driver.Tx { return intTx{tx} })
}

type intTx struct{ driver.Tx }

func (t intTx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	r, err := t.Tx.Exec(ctx, cmds...)
	for i, v := range r {
		if n, ok := v.(int64); ok {
			r[i] = int(n)
		}
	}
	return r, err
}

// ignoresAbort reports an aborted transaction as a success.
type ignoresAbort struct{ broken }

func (b *ignoresAbort) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return b.watchTx(ctx, keys, fn, func(tx driver.Tx) driver.Tx { return abortTx{tx} })
}

type abortTx struct{ driver.Tx }

func (t abortTx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	r, err := t.Tx.Exec(ctx, cmds...)
	if errors.Is(err, driver.ErrTxAborted) {
		r = make([]any, len(cmds))
		for i := range r {
			r[i] = "OK"
		}
		return r, nil
	}
	return r, err
}

// connOnly implements neither Scripter nor Watcher.
type connOnly struct{ driver.Conn }

// crossedReplies answers Get with the value of the last SetNX this Conn
// made, whichever goroutine made it: one reply buffer shared by all.
type crossedReplies struct {
	broken
	mu   sync.Mutex
	last string
}

func (b *crossedReplies) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	ok, err := b.c.SetNX(ctx, key, value, ttl)
	b.mu.Lock()
	b.last = value
	b.mu.Unlock()
	time.Sleep(time.Millisecond) // the reply travels
	return ok, err
}

func (b *crossedReplies) Get(ctx context.Context, key string) (string, bool, error) {
	v, ok, err := b.c.Get(ctx, key)
	b.mu.Lock()
	defer b.mu.Unlock()
	if ok && b.last != "" {
		v = b.last
	}
	return v, ok, err
}

// ignoresContext sends every command with a context that never ends.
type ignoresContext struct{ broken }

func (b *ignoresContext) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	return b.c.SetNX(context.WithoutCancel(ctx), key, value, ttl)
}

func (b *ignoresContext) Get(ctx context.Context, key string) (string, bool, error) {
	return b.c.Get(context.WithoutCancel(ctx), key)
}

func (b *ignoresContext) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return b.broken.watchTx(context.WithoutCancel(ctx), keys, fn, func(tx driver.Tx) driver.Tx { return noCtxTx{tx} })
}

type noCtxTx struct{ driver.Tx }

func (t noCtxTx) Get(ctx context.Context, key string) (string, bool, error) {
	return t.Tx.Get(context.WithoutCancel(ctx), key)
}

func (t noCtxTx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	return t.Tx.Exec(context.WithoutCancel(ctx), cmds...)
}

// panicsAfterClose drops its connection on Close, and then calls it: a
// nil interface, so every call panics.
type panicsAfterClose struct {
	mu sync.Mutex
	c  driver.Conn // nil after Close
}

func (b *panicsAfterClose) conn() driver.Conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.c
}

func (b *panicsAfterClose) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c != nil {
		_ = b.c.Close()
		b.c = nil
	}
	return nil
}

func (b *panicsAfterClose) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	return b.conn().SetNX(ctx, key, value, ttl)
}

func (b *panicsAfterClose) Get(ctx context.Context, key string) (string, bool, error) {
	return b.conn().Get(ctx, key)
}

func (b *panicsAfterClose) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return b.conn().(driver.Watcher).Watch(ctx, keys, fn)
}

// worksAfterClose has a Close that closes nothing.
type worksAfterClose struct{ broken }

func (b *worksAfterClose) Close() error { return nil }

// txHidesWrongType reports a key of another type as missing inside a
// transaction.
type txHidesWrongType struct{ broken }

func (b *txHidesWrongType) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return b.watchTx(ctx, keys, fn, func(tx driver.Tx) driver.Tx { return hideTx{tx} })
}

type hideTx struct{ driver.Tx }

func (t hideTx) Get(ctx context.Context, key string) (string, bool, error) {
	v, ok, err := t.Tx.Get(ctx, key)
	if errors.Is(err, driver.ErrWrongType) {
		return "", false, nil
	}
	return v, ok, err
}

// execErrorAsAborted reports every failed transaction as aborted by a
// watched key.
type execErrorAsAborted struct{ broken }

func (b *execErrorAsAborted) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return b.watchTx(ctx, keys, fn, func(tx driver.Tx) driver.Tx { return asAbortedTx{tx} })
}

type asAbortedTx struct{ driver.Tx }

func (t asAbortedTx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	r, err := t.Tx.Exec(ctx, cmds...)
	if err != nil {
		return nil, driver.ErrTxAborted
	}
	return r, nil
}

// execErrorAsNil reports a command that failed inside EXEC as a nil reply,
// without error.
type execErrorAsNil struct{ broken }

func (b *execErrorAsNil) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return b.watchTx(ctx, keys, fn, func(tx driver.Tx) driver.Tx { return asNilTx{tx} })
}

type asNilTx struct{ driver.Tx }

func (t asNilTx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	r, err := t.Tx.Exec(ctx, cmds...)
	if err != nil && len(r) == len(cmds) {
		for i, v := range r {
			if _, failed := v.(error); failed {
				r[i] = nil
			}
		}
		return r, nil
	}
	return r, err
}

// ignoresExpiryInWatch treats a watched key that expired as unchanged: it
// runs the transaction again, unwatched, when every watched key is gone.
type ignoresExpiryInWatch struct{ broken }

func (b *ignoresExpiryInWatch) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return b.watchTx(ctx, keys, fn, func(tx driver.Tx) driver.Tx { return expiryTx{tx, b, keys} })
}

type expiryTx struct {
	driver.Tx
	b    *ignoresExpiryInWatch
	keys []string
}

func (t expiryTx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	r, err := t.Tx.Exec(ctx, cmds...)
	if !errors.Is(err, driver.ErrTxAborted) {
		return r, err
	}
	for _, k := range t.keys {
		if _, ok, gerr := t.b.c.Get(ctx, k); gerr != nil || ok {
			return r, err // really changed
		}
	}
	err = t.b.broken.Watch(ctx, nil, func(tx driver.Tx) error {
		r, err = tx.Exec(ctx, cmds...)
		return err
	})
	return r, err
}

// missingIsError reports a missing key as an error.
type missingIsError struct{ broken }

func (b *missingIsError) Get(ctx context.Context, key string) (string, bool, error) {
	v, ok, err := b.c.Get(ctx, key)
	if err == nil && !ok {
		return "", false, errors.New("broken: redis: nil")
	}
	return v, ok, err
}

// closeTwicePanics closes a channel in Close, without a guard.
type closeTwicePanics struct {
	broken
	done chan struct{}
}

func (b *closeTwicePanics) Close() error {
	close(b.done)
	return b.c.Close()
}

// dropsFnError returns WATCH's outcome, not fn's error.
type dropsFnError struct{ broken }

func (b *dropsFnError) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	_ = b.broken.Watch(ctx, keys, fn)
	return nil
}

// dropsSetOptions sends SET with its key and value only.
type dropsSetOptions struct{ broken }

func (b *dropsSetOptions) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return b.watchTx(ctx, keys, fn, func(tx driver.Tx) driver.Tx { return dropsTx{tx} })
}

type dropsTx struct{ driver.Tx }

func (t dropsTx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	out := make([][]string, len(cmds))
	for i, c := range cmds {
		if len(c) > 3 && strings.EqualFold(c[0], "SET") {
			c = c[:3]
		}
		out[i] = c
	}
	return t.Tx.Exec(ctx, out...)
}

// --- Broken drivers on the redigo adapter: every capability. ---

// full passes every capability to a working driver that has them all.
type full struct {
	driver.Conn
	s   driver.Scripter
	w   driver.Watcher
	rw  driver.ReplicaWaiter
	sub driver.Subscriber
}

func newFull(c driver.Conn) full {
	return full{
		Conn: c,
		s:    c.(driver.Scripter),
		w:    c.(driver.Watcher),
		rw:   c.(driver.ReplicaWaiter),
		sub:  c.(driver.Subscriber),
	}
}

func fullWrap(f func(full) driver.Conn) func(driver.Conn, string) driver.Conn {
	return func(c driver.Conn, _ string) driver.Conn { return f(newFull(c)) }
}

func (f full) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	return f.s.Eval(ctx, script, keys, args...)
}

func (f full) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	return f.s.EvalSha(ctx, sha1, keys, args...)
}

func (f full) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return f.w.Watch(ctx, keys, fn)
}

func (f full) EvalShaWait(ctx context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return f.rw.EvalShaWait(ctx, sha1, keys, args, replicas, timeout)
}

func (f full) EvalWait(ctx context.Context, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return f.rw.EvalWait(ctx, script, keys, args, replicas, timeout)
}

func (f full) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	return f.sub.Subscribe(ctx, onMessage)
}

// noScriptByWord takes any script error that says "script" for NOSCRIPT.
type noScriptByWord struct{ full }

func byWord(err error) error {
	if err != nil && strings.Contains(strings.ToLower(err.Error()), "script") && !errors.Is(err, driver.ErrNoScript) {
		return errors.Join(err, driver.ErrNoScript)
	}
	return err
}

func (b *noScriptByWord) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	r, err := b.full.Eval(ctx, script, keys, args...)
	return r, byWord(err)
}

func (b *noScriptByWord) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	r, err := b.full.EvalSha(ctx, sha1, keys, args...)
	return r, byWord(err)
}

// scriptsIgnoreContext runs scripts and subscriptions with a context that
// never ends.
type scriptsIgnoreContext struct{ full }

func (b *scriptsIgnoreContext) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	return b.full.Eval(context.WithoutCancel(ctx), script, keys, args...)
}

func (b *scriptsIgnoreContext) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	return b.full.EvalSha(context.WithoutCancel(ctx), sha1, keys, args...)
}

func (b *scriptsIgnoreContext) EvalShaWait(ctx context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return b.full.EvalShaWait(context.WithoutCancel(ctx), sha1, keys, args, replicas, timeout)
}

func (b *scriptsIgnoreContext) EvalWait(ctx context.Context, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return b.full.EvalWait(context.WithoutCancel(ctx), script, keys, args, replicas, timeout)
}

func (b *scriptsIgnoreContext) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	s, err := b.full.Subscribe(context.WithoutCancel(ctx), onMessage)
	if err != nil {
		return nil, err
	}
	return noCtxSub{s}, nil
}

type noCtxSub struct{ driver.Subscription }

func (s noCtxSub) Add(ctx context.Context, channels ...string) error {
	return s.Subscription.Add(context.WithoutCancel(ctx), channels...)
}

// ignoresDeadline is scriptsIgnoreContext for every method.
type ignoresDeadline struct{ full }

func (b *ignoresDeadline) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	return b.full.SetNX(context.WithoutCancel(ctx), key, value, ttl)
}

func (b *ignoresDeadline) Get(ctx context.Context, key string) (string, bool, error) {
	return b.full.Get(context.WithoutCancel(ctx), key)
}

func (b *ignoresDeadline) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	return (&scriptsIgnoreContext{b.full}).Eval(ctx, script, keys, args...)
}

func (b *ignoresDeadline) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	return (&scriptsIgnoreContext{b.full}).EvalSha(ctx, sha1, keys, args...)
}

func (b *ignoresDeadline) EvalShaWait(ctx context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return (&scriptsIgnoreContext{b.full}).EvalShaWait(ctx, sha1, keys, args, replicas, timeout)
}

func (b *ignoresDeadline) EvalWait(ctx context.Context, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return (&scriptsIgnoreContext{b.full}).EvalWait(ctx, script, keys, args, replicas, timeout)
}

func (b *ignoresDeadline) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return b.full.Watch(context.WithoutCancel(ctx), keys, fn)
}

func (b *ignoresDeadline) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	return (&scriptsIgnoreContext{b.full}).Subscribe(ctx, onMessage)
}

// scriptsWorkAfterClose has a Close that closes nothing.
type scriptsWorkAfterClose struct{ full }

func (b *scriptsWorkAfterClose) Close() error { return nil }

// waitHidesNoScript returns NOSCRIPT from EvalShaWait untranslated.
type waitHidesNoScript struct{ full }

func (b *waitHidesNoScript) EvalShaWait(ctx context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	r, n, err := b.full.EvalShaWait(ctx, sha1, keys, args, replicas, timeout)
	if err != nil {
		err = errors.New(err.Error()) // the text, without the sentinel
	}
	return r, n, err
}

// waitElsewhere sends WAIT on a connection of its own, not the script's.
type waitElsewhere struct {
	full
	addr string
}

func (b *waitElsewhere) wait(replicas int, timeout time.Duration) (int, error) {
	ms, err := driver.WaitTimeout(replicas, timeout)
	if err != nil {
		return 0, err
	}
	r, err := testredis.Do(b.addr, "WAIT", itoa(int64(replicas)), itoa(ms))
	if err != nil {
		return 0, err
	}
	n, _ := r.(int64)
	return int(n), nil
}

func (b *waitElsewhere) EvalShaWait(ctx context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	r, err := b.full.EvalSha(ctx, sha1, keys, args...)
	if err != nil {
		return nil, 0, err
	}
	n, err := b.wait(replicas, timeout)
	return r, n, err
}

func (b *waitElsewhere) EvalWait(ctx context.Context, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	r, err := b.full.Eval(ctx, script, keys, args...)
	if err != nil {
		return nil, 0, err
	}
	n, err := b.wait(replicas, timeout)
	return r, n, err
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// subBug is one bug of a subscription.
type subBug struct {
	full
	bug int
}

const (
	bugAddEarly     = iota // Add returns before the server confirmed
	bugDropHalf            // every other message is lost
	bugNoRemove            // Remove does nothing
	bugConcurrent          // onMessage runs in a goroutine per message
	bugCloseNothing        // Close closes nothing
	bugCloseAsync          // Close returns before the subscription ended
	bugDropOneIn97         // one message in 97 is lost
	bugRemoveAll           // Remove unsubscribes from every channel
	bugLeakOnClose         // Close leaves a goroutine behind
)

// leaked holds the goroutines bugLeakOnClose leaves behind: they end when
// the process does.
var leakedForever = make(chan struct{})

func (b *subBug) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	deliver := onMessage
	var n int
	var mu sync.Mutex
	switch b.bug {
	case bugDropHalf:
		deliver = func(channel, payload string) {
			mu.Lock()
			n++
			drop := n%2 == 0
			mu.Unlock()
			if !drop {
				onMessage(channel, payload)
			}
		}
	case bugConcurrent:
		deliver = func(channel, payload string) { go onMessage(channel, payload) }
	case bugDropOneIn97:
		deliver = func(channel, payload string) {
			mu.Lock()
			n++
			drop := n%97 == 0
			mu.Unlock()
			if !drop {
				onMessage(channel, payload)
			}
		}
	}
	s, err := b.full.Subscribe(ctx, deliver)
	if err != nil {
		return nil, err
	}
	return &bugSub{Subscription: s, bug: b.bug}, nil
}

type bugSub struct {
	driver.Subscription
	bug int
	wg  sync.WaitGroup

	mu    sync.Mutex
	added []string
}

func (s *bugSub) Add(ctx context.Context, channels ...string) error {
	s.mu.Lock()
	s.added = append(s.added, channels...)
	s.mu.Unlock()
	if s.bug != bugAddEarly {
		return s.Subscription.Add(ctx, channels...)
	}
	s.wg.Go(func() {
		time.Sleep(200 * time.Millisecond)
		_ = s.Subscription.Add(context.Background(), channels...)
	})
	return nil
}

func (s *bugSub) Remove(ctx context.Context, channels ...string) error {
	switch s.bug {
	case bugNoRemove:
		return nil
	case bugRemoveAll:
		s.mu.Lock()
		channels = slices.Clone(s.added)
		s.mu.Unlock()
	}
	return s.Subscription.Remove(ctx, channels...)
}

func (s *bugSub) Close() error {
	switch s.bug {
	case bugCloseNothing:
		return nil
	case bugCloseAsync:
		go func() { _ = s.Subscription.Close() }()
		return nil
	case bugLeakOnClose:
		go func() { <-leakedForever }()
	}
	s.wg.Wait()
	return s.Subscription.Close()
}
