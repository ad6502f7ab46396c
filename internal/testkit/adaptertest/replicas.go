package adaptertest

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// SetScript is the script the replica-wait checks run: SET KEYS[1] ARGV[1].
const SetScript = "return redis.call('SET', KEYS[1], ARGV[1])"

// SetScriptSHA is the SHA1 of SetScript, in hex, as EVALSHA takes it.
var SetScriptSHA = func() string {
	sum := sha1.Sum([]byte(SetScript))
	return hex.EncodeToString(sum[:])
}()

// unknownSHA is the SHA1 of no script the checks load.
const unknownSHA = "ffffffffffffffffffffffffffffffffffffffff"

// NextWait finds, in what mon saw, the next script call (cmd, EVAL or
// EVALSHA) naming key, checks that the next command from the same
// connection is WAIT, and returns WAIT's arguments.
func NextWait(t testing.TB, mon *testredis.Monitor, cmd, key string) []string {
	t.Helper()
	ev := mon.Next(t, func(c testredis.Command) bool { return c.Is(cmd) && slices.Contains(c.Args, key) })
	w := mon.Next(t, func(c testredis.Command) bool { return c.Addr == ev.Addr })
	if !w.Is("wait") {
		t.Fatalf("after %q, its connection sent %q, not WAIT", ev.Args, w.Args)
	}
	return w.Args[1:]
}

// CheckWaitZero checks w against a server whose WAIT answers 0 at once
// (miniredis), on which SetScript is loaded: EvalShaWait of SetScript sets
// key to "v", then between (if not nil) runs, and EvalWait reads "v" back;
// both see 0 acknowledgements.
func CheckWaitZero(t testing.TB, ctx context.Context, w driver.ReplicaWaiter, key string, between func()) {
	if r, acked, err := w.EvalShaWait(ctx, SetScriptSHA, []string{key}, []string{"v"}, 1, 50*time.Millisecond); r != "OK" || acked != 0 || err != nil {
		t.Fatalf("EvalShaWait = %v, %d, %v; want OK, 0, nil", r, acked, err)
	}
	if between != nil {
		between()
	}
	if r, acked, err := w.EvalWait(ctx, "return redis.call('GET', KEYS[1])", []string{key}, nil, 1, 50*time.Millisecond); r != "v" || acked != 0 || err != nil {
		t.Fatalf("EvalWait = %v, %d, %v; want v, 0, nil", r, acked, err)
	}
}

// ReplicaPair is a private primary with one replica, and a Monitor of what
// the primary receives, for checking a driver.ReplicaWaiter.
type ReplicaPair struct {
	// Primary is the server that the waiter under test talks to; it has
	// SetScript loaded.
	Primary *testredis.Server
	// Replica replicates Primary.
	Replica *testredis.Server
	// Monitor records what Primary receives, from before SetScript was
	// loaded.
	Monitor *testredis.Monitor
}

// StartReplicaPair starts a ReplicaPair, stopped when t ends, and loads
// SetScript on its primary.
func StartReplicaPair(t testing.TB) *ReplicaPair {
	t.Helper()
	p := testredis.Start(t)
	r := testredis.StartReplica(t, p)
	mon := p.Monitor(t)
	if _, err := p.Do("SCRIPT", "LOAD", SetScript); err != nil {
		t.Fatal(err)
	}
	return &ReplicaPair{Primary: p, Replica: r, Monitor: mon}
}

// NextWait is NextWait on rp's Monitor.
func (rp *ReplicaPair) NextWait(t testing.TB, cmd, key string) []string {
	t.Helper()
	return NextWait(t, rp.Monitor, cmd, key)
}

// OnReplica fails t unless GET k on the replica answers want.
func (rp *ReplicaPair) OnReplica(t testing.TB, k, want string) {
	t.Helper()
	if v, err := rp.Replica.Do("GET", k); err != nil || v != want {
		t.Fatalf("GET %s on the replica = %#v, %v; want %q", k, v, err, want)
	}
}

// CheckWaits checks w, a waiter on rp's primary, while the replica keeps
// up: EvalShaWait and EvalWait write through to the replica, are acked by
// it, and are followed on their connection by WAIT 1 with the timeout in
// whole milliseconds, rounded up; bad timeouts and replica counts fail
// before anything is sent; NOSCRIPT and WRONGTYPE come back as
// driver.ErrNoScript and driver.ErrWrongType, with the connection left in
// step. It writes the keys k1, k2, k3-0 to k3-3, k4 and h.
func (rp *ReplicaPair) CheckWaits(t testing.TB, ctx context.Context, w driver.ReplicaWaiter) {
	v, acked, err := w.EvalShaWait(ctx, SetScriptSHA, []string{"k1"}, []string{"v1"}, 1, time.Second)
	if v != "OK" || acked != 1 || err != nil {
		t.Fatalf("EvalShaWait = %v, %d, %v; want OK, 1, nil", v, acked, err)
	}
	rp.OnReplica(t, "k1", "v1")
	if got := rp.NextWait(t, "evalsha", "k1"); !slices.Equal(got, []string{"1", "1000"}) {
		t.Errorf("sent WAIT %q, want WAIT 1 1000", got)
	}
	v, acked, err = w.EvalWait(ctx, SetScript, []string{"k2"}, []string{"v2"}, 1, time.Second)
	if v != "OK" || acked != 1 || err != nil {
		t.Fatalf("EvalWait = %v, %d, %v; want OK, 1, nil", v, acked, err)
	}
	rp.OnReplica(t, "k2", "v2")
	if got := rp.NextWait(t, "eval", "k2"); !slices.Equal(got, []string{"1", "1000"}) {
		t.Errorf("sent WAIT %q, want WAIT 1 1000", got)
	}

	// Timeouts go out rounded up to whole milliseconds, never as 0.
	for i, tc := range []struct {
		timeout time.Duration
		want    string
	}{{time.Nanosecond, "1"}, {999 * time.Microsecond, "1"}, {1500 * time.Microsecond, "2"}, {2 * time.Millisecond, "2"}} {
		k := fmt.Sprintf("k3-%d", i)
		if _, acked, err := w.EvalShaWait(ctx, SetScriptSHA, []string{k}, []string{"v3"}, 1, tc.timeout); acked != 1 || err != nil {
			t.Fatalf("EvalShaWait with timeout %v = %d, %v", tc.timeout, acked, err)
		}
		if got := rp.NextWait(t, "evalsha", k); !slices.Equal(got, []string{"1", tc.want}) {
			t.Errorf("timeout %v: sent WAIT %q, want WAIT 1 %s", tc.timeout, got, tc.want)
		}
	}
	for _, tc := range []struct {
		replicas int
		timeout  time.Duration
		want     string
	}{{1, 0, "timeout must be positive"}, {1, -time.Second, "timeout must be positive"}, {-1, time.Second, "replicas must not be negative"}} {
		if _, _, err := w.EvalWait(ctx, SetScript, []string{"k3"}, []string{"x"}, tc.replicas, tc.timeout); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("EvalWait(%d, %v): err = %v, want %q", tc.replicas, tc.timeout, err, tc.want)
		}
	}

	// NOSCRIPT, although WAIT answered; the connection stays in step.
	_, _, err = w.EvalShaWait(ctx, unknownSHA, []string{"k4"}, []string{"x"}, 1, time.Second)
	if !errors.Is(err, driver.ErrNoScript) {
		t.Fatalf("EvalShaWait(unknown sha) err = %v, want ErrNoScript", err)
	}
	if got := rp.NextWait(t, "evalsha", "k4"); !slices.Equal(got, []string{"1", "1000"}) {
		t.Errorf("sent WAIT %q after the unknown EVALSHA, want WAIT 1 1000", got)
	}
	if v, acked, err := w.EvalWait(ctx, "return ARGV[1]", nil, []string{"next"}, 1, time.Second); v != "next" || acked != 1 || err != nil {
		t.Fatalf("EvalWait after NOSCRIPT = %v, %d, %v", v, acked, err)
	}
	if _, err := rp.Primary.Do("HSET", "h", "f", "v"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.EvalWait(ctx, "return redis.call('GET', KEYS[1])", []string{"h"}, nil, 1, time.Second); !errors.Is(err, driver.ErrWrongType) {
		t.Fatalf("EvalWait on a hash: err = %v, want ErrWrongType", err)
	}
}

// CheckAcks checks that WAIT counts the script's own connection, and only
// acks that come. While the replica sleeps for sleep seconds (DEBUG SLEEP),
// a WAIT from a fresh connection, which wrote nothing, answers 1 at once;
// then whileAsleep runs: nil means CheckSleepingWait(t, ctx, w, "", "k5").
// Once the replica is awake again, CheckAcks stops it, and EvalShaWait
// through w (of k6) gets 0 acknowledgements, after its 100 ms timeout.
func (rp *ReplicaPair) CheckAcks(t testing.TB, ctx context.Context, w driver.ReplicaWaiter, sleep string, whileAsleep func()) {
	slept := make(chan error, 1)
	go func() {
		_, err := rp.Replica.Do("DEBUG", "SLEEP", sleep)
		slept <- err
	}()
	// Asleep, seen, rather than 100 ms later: the sleep's start is what
	// the checks below are timed from.
	waitAsleep(t, rp.Replica.Addr())
	if n, err := rp.Primary.Do("WAIT", "1", "300"); n != int64(1) || err != nil {
		t.Fatalf("WAIT on a fresh connection = %#v, %v; want 1", n, err)
	}
	if whileAsleep == nil {
		CheckSleepingWait(t, ctx, w, "", "k5")
	} else {
		whileAsleep()
	}
	if err := <-slept; err != nil {
		t.Fatalf("DEBUG SLEEP on the replica: %v", err)
	}

	// Without the replica: 0 acknowledgements, after the timeout.
	rp.Replica.Stop()
	start := time.Now()
	v, acked, err := w.EvalShaWait(ctx, SetScriptSHA, []string{"k6"}, []string{"v6"}, 1, 100*time.Millisecond)
	took := time.Since(start)
	if v != "OK" || acked != 0 || err != nil {
		t.Fatalf("EvalShaWait without the replica = %v, %d, %v; want OK, 0, nil", v, acked, err)
	}
	if took < 100*time.Millisecond || took > time.Second {
		t.Errorf("EvalShaWait with a 100ms timeout returned after %v", took)
	}
}

// CheckSleepingWait checks, while the replica sleeps (see CheckAcks), that
// EvalShaWait of SetScript on key through w, with a 300 ms timeout, waits
// that long for the ack of its own write and gets 0. name, when not empty,
// prefixes the failure.
func CheckSleepingWait(t testing.TB, ctx context.Context, w driver.ReplicaWaiter, name, key string) {
	prefix := ""
	if name != "" {
		prefix = name + ": "
	}
	start := time.Now()
	v, acked, err := w.EvalShaWait(ctx, SetScriptSHA, []string{key}, []string{"v5"}, 1, 300*time.Millisecond)
	took := time.Since(start)
	if v != "OK" || acked != 0 || err != nil || took < 300*time.Millisecond {
		t.Fatalf("%sEvalShaWait while the replica sleeps = %v, %d, %v after %v; want OK, 0, nil after 300ms", prefix, v, acked, err, took)
	}
}
