package conformance_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/relock-go/relock/conformance"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/minitest"
)

// The broken drivers of issue 21: each breaks one line of driver.go the
// way a driver author might, in a way the suite used to miss. One group
// per class of miss: values too tidy, checks that needed a hook, bounds
// too loose or missing, a check a timing quirk defeated, network errors
// under the driver.

func init() {
	// bare is the redigo adapter on miniredis with neither Publish nor
	// NewSilentConn: what the driver can show, the suite shows through
	// the driver itself and through Addr and NewConnTo.
	bases["bare"] = base{harness: func(t *testing.T) (conformance.Harness, string) {
		h := minitest.Harness(t, newRedigo)
		h.Publish, h.NewSilentConn = nil, nil
		return h, h.Addr
	}}
	for name, bd := range brokenDrivers21 {
		brokenDrivers[name] = bd
	}
	// The WATCH-path gap: an aborted EXEC taken for a success releases
	// and refreshes a lock another owner holds.
	ia := brokenDrivers["IgnoresAbort"]
	ia.mustFail = append(ia.mustFail, "Release/ChangedBeforeExec/Watch", "Refresh/ChangedBeforeExec/Watch")
	brokenDrivers["IgnoresAbort"] = ia
	// WAIT sent elsewhere is seen on the wire too.
	wo := brokenDrivers["WaitOnOtherConnection"]
	wo.mustFail = append(wo.mustFail, "Driver/ReplicaWaiter/Wire")
	brokenDrivers["WaitOnOtherConnection"] = wo
}

var brokenDrivers21 = map[string]brokenDriver{
	// 1. Values too tidy.
	"SecondsTTL": {base: "mem",
		wrap:     memWrap(func(b broken) driver.Conn { return &secondsTTL{b} }),
		mustFail: []string{"Driver/Values/TTL", "Driver/Values/Expiry"},
	},
	"NumericStringsAsInts": {base: "mem",
		wrap:     memWrap(func(b broken) driver.Conn { return &numericStrings{b} }),
		mustFail: []string{"Driver/Values/ExecReplies"},
	},
	"NilInArrayAsEmpty": {base: "mini",
		wrap:     fullWrap(func(f full) driver.Conn { return &nilAsEmpty{f} }),
		mustFail: []string{"Driver/Values/ScriptReplies", "Driver/Values/ExecReplies", "Inspect/Free/Script", "Inspect/Free/Watch"},
	},
	"WrongTypeAnywhere": {base: "mini",
		wrap: fullWrap(func(f full) driver.Conn {
			return &classifyAnywhere{full: f, word: "WRONGTYPE", kind: driver.ErrWrongType}
		}),
		mustFail: []string{"Driver/Values/ErrorTexts/Script", "Driver/Values/ErrorTexts/Exec", "Driver/Values/ErrorTexts/Commands"},
	},
	"NoPermAnywhere": {base: "mini",
		wrap: fullWrap(func(f full) driver.Conn {
			return &classifyAnywhere{full: f, word: "NOPERM", kind: driver.ErrNoPermission}
		}),
		mustFail: []string{"Driver/Values/ErrorTexts/Script", "Driver/Values/ErrorTexts/Exec", "Driver/Values/ErrorTexts/Commands"},
	},
	"RefusedAnywhere": {base: "mini",
		wrap: fullWrap(func(f full) driver.Conn {
			return &classifyAnywhere{full: f, word: "READONLY", kind: driver.ErrServerRefused}
		}),
		mustFail: []string{"Driver/Values/ErrorTexts/Script", "Driver/Values/ErrorTexts/Exec", "Driver/Values/ErrorTexts/Commands"},
	},
	"NoPermUnclassified": {base: "mini",
		wrap:     fullWrap(func(f full) driver.Conn { return &unclassify{full: f, kind: driver.ErrNoPermission} }),
		mustFail: []string{"Driver/Values/ErrorTexts/Script", "Driver/Values/ErrorTexts/Exec", "Driver/Values/ErrorTexts/Commands"},
	},

	// 2. Checks that needed a hook: the bare base has neither Publish nor
	// NewSilentConn.
	"DropsUnderLoad": {base: "bare",
		wrap:     fullWrap(func(f full) driver.Conn { return &subBug{full: f, bug: bugDropOneIn97} }),
		mustFail: []string{"Driver/Subscriber/Burst", "Driver/Subscriber/NoLossInOrder"},
	},
	"CrossedSubscriptions": {base: "bare",
		wrap:     fullWrap(func(f full) driver.Conn { return &crossedSubs{full: f} }),
		mustFail: []string{"Driver/Subscriber/Isolated"},
	},
	"RemoveUnsubscribesAll": {base: "bare",
		wrap:     fullWrap(func(f full) driver.Conn { return &subBug{full: f, bug: bugRemoveAll} }),
		mustFail: []string{"Driver/Subscriber/RemoveUnsubscribes"},
	},
	"IgnoresDeadlineNoHook": {base: "bare",
		wrap:     fullWrap(func(f full) driver.Conn { return &ignoresDeadline{f} }),
		mustFail: []string{"Driver/Context/Deadline/SetNX", "Driver/Context/Deadline/Get", "Driver/Context/Deadline/Eval"},
	},

	// 3. Bounds too loose or missing.
	"StretchesDeadline": {base: "mini",
		wrap: fullWrap(func(f full) driver.Conn { return &ctxBug{full: f, bug: stretchDeadline} }),
		mustFail: []string{
			"Driver/Context/Deadline/SetNX",
			"Driver/Context/Deadline/Get",
			"Driver/Context/Deadline/Eval",
			"Driver/Context/Deadline/Watch",
		},
	},
	"IgnoresCancelInFlight": {base: "mini",
		wrap: fullWrap(func(f full) driver.Conn { return &ctxBug{full: f, bug: deadlineOnly} }),
		mustFail: []string{
			"Driver/Context/InFlight/SetNX",
			"Driver/Context/InFlight/Get",
			"Driver/Context/InFlight/Eval",
			"Driver/Context/InFlight/Watch",
		},
	},
	"WaitTimeoutInSeconds": {base: "replica",
		wrap:     func(c driver.Conn, _ string) driver.Conn { return &waitSeconds{newFull(c)} },
		mustFail: []string{"Driver/ReplicaWaiter/Timeout"},
	},
	"ValidatePings": {base: "mini",
		wrap:     fullWrap(func(f full) driver.Conn { return &validatePings{f} }),
		mustFail: []string{"Driver/Validate/DeadAddress", "Driver/Validate/SilentServer", "Driver/Validate/SendsNothing"},
	},
	"LeaksGoroutinePerClose": {base: "mini",
		wrap:     fullWrap(func(f full) driver.Conn { return &subBug{full: f, bug: bugLeakOnClose} }),
		mustFail: []string{"Driver/Subscriber/CloseEndsGoroutines"},
	},

	// 4. A check a timing quirk defeated.
	"WaitBeforeScript": {base: "replica",
		wrap: func(c driver.Conn, addr string) driver.Conn {
			return &waitOrder{full: newFull(c), addr: addr, waitFirst: true}
		},
		mustFail: []string{"Driver/ReplicaWaiter/Wire", "Driver/ReplicaWaiter/SameConnection"},
	},
	"WaitOnPooledConnection": {base: "replica",
		wrap:     func(c driver.Conn, addr string) driver.Conn { return &waitOrder{full: newFull(c), addr: addr} },
		mustFail: []string{"Driver/ReplicaWaiter/Wire", "Driver/ReplicaWaiter/SameConnection"},
	},

	// 5. Network errors under the driver.
	"NetworkErrorAsAnswer": {base: "mini",
		wrap: fullWrap(func(f full) driver.Conn { return &netAsAnswer{f} }),
		mustFail: []string{
			"Driver/Network/Refused/SetNX",
			"Driver/Network/Refused/Get",
			"Driver/Network/Refused/Eval",
			"Driver/Network/Reset/SetNX",
			"Driver/Network/Reset/Get",
			"Driver/Network/Reset/Eval",
		},
	},
}

// --- 1. Values. ---

// secondsTTL sends EX ⌊ttl/1s⌋ for a TTL of a second or more.
type secondsTTL struct{ broken }

func (b *secondsTTL) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	if ttl >= time.Second {
		ttl = ttl.Truncate(time.Second)
	}
	return b.c.SetNX(ctx, key, value, ttl)
}

// numericStrings reads a bulk string that looks like an integer as one,
// in EXEC's replies.
type numericStrings struct{ broken }

func (b *numericStrings) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return b.watchTx(ctx, keys, fn, func(tx driver.Tx) driver.Tx { return numericTx{tx} })
}

type numericTx struct{ driver.Tx }

func (t numericTx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	r, err := t.Tx.Exec(ctx, cmds...)
	for i, v := range r {
		if s, ok := v.(string); ok {
			if n, perr := strconv.ParseInt(s, 10, 64); perr == nil {
				r[i] = n
			}
		}
	}
	return r, err
}

// nilAsEmpty maps a nil inside an array to "".
type nilAsEmpty struct{ full }

func emptyNils(v any, inArray bool) any {
	switch x := v.(type) {
	case nil:
		if inArray {
			return ""
		}
	case []any:
		for i := range x {
			x[i] = emptyNils(x[i], true)
		}
	}
	return v
}

func (b *nilAsEmpty) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	r, err := b.full.Eval(ctx, script, keys, args...)
	return emptyNils(r, false), err
}

func (b *nilAsEmpty) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	r, err := b.full.EvalSha(ctx, sha1, keys, args...)
	return emptyNils(r, false), err
}

func (b *nilAsEmpty) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return b.full.Watch(ctx, keys, func(tx driver.Tx) error { return fn(nilTx{tx}) })
}

type nilTx struct{ driver.Tx }

func (t nilTx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	r, err := t.Tx.Exec(ctx, cmds...)
	for i := range r {
		r[i] = emptyNils(r[i], true) // EXEC's reply is an array too
	}
	return r, err
}

// errMap changes the errors of every call of a full driver.
type errMap struct {
	full
	m func(error) error
}

func (b *errMap) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	ok, err := b.full.SetNX(ctx, key, value, ttl)
	return ok, b.m(err)
}

func (b *errMap) Get(ctx context.Context, key string) (string, bool, error) {
	v, ok, err := b.full.Get(ctx, key)
	return v, ok, b.m(err)
}

func (b *errMap) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	r, err := b.full.Eval(ctx, script, keys, args...)
	return r, b.m(err)
}

func (b *errMap) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	r, err := b.full.EvalSha(ctx, sha1, keys, args...)
	return r, b.m(err)
}

func (b *errMap) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return b.m(b.full.Watch(ctx, keys, func(tx driver.Tx) error { return fn(errTx{tx, b.m}) }))
}

type errTx struct {
	driver.Tx
	m func(error) error
}

func (t errTx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	r, err := t.Tx.Exec(ctx, cmds...)
	return r, t.m(err)
}

// classifyAnywhere takes an error whose text holds word anywhere for kind.
type classifyAnywhere struct {
	full
	word string
	kind error
}

func (b *classifyAnywhere) m(err error) error {
	if err != nil && strings.Contains(err.Error(), b.word) && !errors.Is(err, b.kind) {
		return errors.Join(err, b.kind)
	}
	return err
}

func (b *classifyAnywhere) conn() *errMap { return &errMap{full: b.full, m: b.m} }

func (b *classifyAnywhere) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	return b.conn().SetNX(ctx, key, value, ttl)
}

func (b *classifyAnywhere) Get(ctx context.Context, key string) (string, bool, error) {
	return b.conn().Get(ctx, key)
}

func (b *classifyAnywhere) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	return b.conn().Eval(ctx, script, keys, args...)
}

func (b *classifyAnywhere) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	return b.conn().EvalSha(ctx, sha1, keys, args...)
}

func (b *classifyAnywhere) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return b.conn().Watch(ctx, keys, fn)
}

// unclassify drops the sentinel kind: the error keeps its text only.
type unclassify struct {
	full
	kind error
}

func (b *unclassify) m(err error) error {
	if errors.Is(err, b.kind) {
		return errors.New(err.Error())
	}
	return err
}

func (b *unclassify) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	return (&errMap{b.full, b.m}).SetNX(ctx, key, value, ttl)
}

func (b *unclassify) Get(ctx context.Context, key string) (string, bool, error) {
	return (&errMap{b.full, b.m}).Get(ctx, key)
}

func (b *unclassify) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	return (&errMap{b.full, b.m}).Eval(ctx, script, keys, args...)
}

func (b *unclassify) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	return (&errMap{b.full, b.m}).EvalSha(ctx, sha1, keys, args...)
}

func (b *unclassify) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return (&errMap{b.full, b.m}).Watch(ctx, keys, fn)
}

// --- 2. Subscriptions. ---

// crossedSubs delivers every subscription's messages to the callback of
// the subscription opened last: one callback slot for the whole Conn.
type crossedSubs struct {
	full
	mu   *sync.Mutex
	last *func(channel, payload string)
}

func (b *crossedSubs) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	if b.mu == nil {
		b.mu, b.last = &sync.Mutex{}, new(func(channel, payload string))
	}
	b.mu.Lock()
	*b.last = onMessage
	b.mu.Unlock()
	return b.full.Subscribe(ctx, func(channel, payload string) {
		b.mu.Lock()
		f := *b.last
		b.mu.Unlock()
		f(channel, payload)
	})
}

// --- 3. Bounds. ---

// ctxBug changes the context of every call.
type ctxBug struct {
	full
	bug int
}

const (
	stretchDeadline = iota // a deadline less than a second away becomes a second
	deadlineOnly           // the deadline is kept, the cancellation dropped
)

func (b *ctxBug) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	out := context.WithoutCancel(ctx)
	switch {
	case b.bug == stretchDeadline && ok && time.Until(dl) < time.Second:
		return context.WithTimeout(out, time.Second)
	case b.bug == stretchDeadline:
		return ctx, func() {}
	case ok:
		return context.WithDeadline(out, dl)
	}
	return out, func() {}
}

func (b *ctxBug) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	return b.full.SetNX(ctx, key, value, ttl)
}

func (b *ctxBug) Get(ctx context.Context, key string) (string, bool, error) {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	return b.full.Get(ctx, key)
}

func (b *ctxBug) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	return b.full.Eval(ctx, script, keys, args...)
}

func (b *ctxBug) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	return b.full.EvalSha(ctx, sha1, keys, args...)
}

func (b *ctxBug) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	return b.full.Watch(ctx, keys, fn)
}

// waitSeconds sends WAIT's timeout rounded up to whole seconds.
type waitSeconds struct{ full }

func roundUpSecond(d time.Duration) time.Duration {
	return (d + time.Second - 1).Truncate(time.Second)
}

func (b *waitSeconds) EvalShaWait(ctx context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return b.full.EvalShaWait(ctx, sha1, keys, args, replicas, roundUpSecond(timeout))
}

func (b *waitSeconds) EvalWait(ctx context.Context, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return b.full.EvalWait(ctx, script, keys, args, replicas, roundUpSecond(timeout))
}

// validatePings checks the connection with a GET, bounded by a short
// timeout, in Validate.
type validatePings struct{ full }

func (b *validatePings) Validate() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _, err := b.full.Get(ctx, "relock-conformance-validate")
	return err
}

// --- 4. WAIT. ---

// waitOrder runs the script and WAIT on connections of its own pool, to
// addr: on two connections (WAIT on the other one), or on one with WAIT
// first.
type waitOrder struct {
	full
	addr      string
	waitFirst bool

	once sync.Once
	pool *redis.Pool
}

func (b *waitOrder) conns() (redis.Conn, redis.Conn) {
	b.once.Do(func() {
		b.pool = &redis.Pool{MaxIdle: 4, Dial: func() (redis.Conn, error) { return redis.Dial("tcp", b.addr) }}
	})
	a := b.pool.Get()
	if b.waitFirst {
		return a, a
	}
	return a, b.pool.Get()
}

func (b *waitOrder) Close() error {
	if b.pool != nil {
		_ = b.pool.Close()
	}
	return b.full.Close()
}

func (b *waitOrder) run(cmd, body string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	ms, err := driver.WaitTimeout(replicas, timeout)
	if err != nil {
		return nil, 0, err
	}
	script, wait := b.conns()
	defer script.Close()
	defer wait.Close()
	cargs := []any{body, len(keys)}
	for _, k := range keys {
		cargs = append(cargs, k)
	}
	for _, a := range args {
		cargs = append(cargs, a)
	}
	var r any
	var n int64
	if b.waitFirst {
		n, err = redis.Int64(wait.Do("WAIT", replicas, ms))
		if err == nil {
			r, err = script.Do(cmd, cargs...)
		}
	} else {
		r, err = script.Do(cmd, cargs...)
		if err == nil {
			n, err = redis.Int64(wait.Do("WAIT", replicas, ms))
		}
	}
	if err != nil {
		return nil, 0, driver.WrapServerError(err)
	}
	if b, ok := r.([]byte); ok {
		r = string(b)
	}
	return r, int(n), nil
}

func (b *waitOrder) EvalShaWait(_ context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return b.run("EVALSHA", sha1, keys, args, replicas, timeout)
}

func (b *waitOrder) EvalWait(_ context.Context, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	return b.run("EVAL", script, keys, args, replicas, timeout)
}

// --- 5. Network. ---

// netAsAnswer reports a refused or reset connection as an answer: the key
// existed, the key is missing, the script returned nil.
type netAsAnswer struct{ full }

func isNetErr(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED)
}

func (b *netAsAnswer) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	ok, err := b.full.SetNX(ctx, key, value, ttl)
	if isNetErr(err) {
		return false, nil
	}
	return ok, err
}

func (b *netAsAnswer) Get(ctx context.Context, key string) (string, bool, error) {
	v, ok, err := b.full.Get(ctx, key)
	if isNetErr(err) {
		return "", false, nil
	}
	return v, ok, err
}

func (b *netAsAnswer) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	r, err := b.full.Eval(ctx, script, keys, args...)
	if isNetErr(err) {
		return nil, nil
	}
	return r, err
}

func (b *netAsAnswer) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	r, err := b.full.EvalSha(ctx, sha1, keys, args...)
	if isNetErr(err) {
		return nil, nil
	}
	return r, err
}

// TestReadmeListsBrokenDrivers keeps the table of conformance/README.md in
// step with brokenDrivers: a row per broken driver, naming every subtest
// it must fail.
func TestReadmeListsBrokenDrivers(t *testing.T) {
	b, err := os.ReadFile("../../conformance/README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if name, ok := strings.CutPrefix(line, "| `"); ok {
			name, _, _ = strings.Cut(name, "`")
			rows[name] = line
		}
	}
	for name, bd := range brokenDrivers {
		row, ok := rows[name]
		if !ok {
			t.Errorf("README.md has no row for the broken driver %s", name)
			continue
		}
		for _, sub := range bd.mustFail {
			if !strings.Contains(row, "`"+sub+"`") {
				t.Errorf("README.md's row for %s does not name %s", name, sub)
			}
		}
	}
	if len(rows) != len(brokenDrivers) {
		t.Errorf("README.md has %d rows, brokenDrivers %d", len(rows), len(brokenDrivers))
	}
}
