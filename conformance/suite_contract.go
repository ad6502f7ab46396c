package conformance

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/relock-go/relock/driver"
)

// Deadlines of the context subtests: a call on a server that never answers
// gets silentDeadline, or is cancelled after inFlightAfter, and must be
// back within silentMargin of that: the time a loaded machine takes to
// schedule the goroutines that notice, far less than a second, so that a
// driver that stretches short deadlines to a second, or that ignores a
// cancellation until its deadline, fails. silentGiveUp is how long the
// suite waits to report how late a late call was.
const (
	silentDeadline = 150 * time.Millisecond
	inFlightAfter  = 100 * time.Millisecond
	silentMargin   = 350 * time.Millisecond
	silentGiveUp   = 3 * time.Second
)

// testScripterOrWatcher: a driver must implement at least one way to
// change a key only if it holds a value.
func testScripterOrWatcher(t *testing.T, h Harness) {
	e := newEnv(t, h)
	c := e.conn()
	_, s := c.(driver.Scripter)
	_, w := c.(driver.Watcher)
	if !s && !w {
		t.Fatalf("%T implements neither driver.Scripter nor driver.Watcher: relock.New rejects it, and every lock subtest was skipped", c)
	}
}

// testConcurrentUse: a Conn is used by many goroutines at once, and each
// call gets its own reply.
func testConcurrentUse(t *testing.T, h Harness) {
	e := newEnv(t, h)
	c := e.conn()
	const workers, rounds = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				k, v := e.key(fmt.Sprintf("w%d-r%d", w, r)), fmt.Sprintf("value-%d-%d", w, r)
				if ok, err := c.SetNX(bg(), k, v, 10*time.Second); err != nil || !ok {
					errs <- fmt.Errorf("SetNX(%q) = %v, %v; want true", k, ok, err)
					return
				}
				if got, ok, err := c.Get(bg(), k); err != nil || !ok || got != v {
					errs <- fmt.Errorf("Get(%q) from goroutine %d = %q, %v, %v; want %q: replies crossed between goroutines", k, w, got, ok, err, v)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// call is one driver method, called with keys under a subtest's prefix.
type call struct {
	name string
	// need is the capability the method belongs to; "" for Conn.
	need string
	run  func(ctx context.Context, c driver.Conn, keys []string) error
}

// callScript is the script the calls run; sha1 is loaded by
// loadCallScript.
const callScript = "return redis.call('SET', KEYS[1], 'called', 'PX', 10000)"

var calls = []call{
	{"SetNX", "", func(ctx context.Context, c driver.Conn, keys []string) error {
		_, err := c.SetNX(ctx, keys[0], "v", 10*time.Second)
		return err
	}},
	{"Get", "", func(ctx context.Context, c driver.Conn, keys []string) error {
		_, _, err := c.Get(ctx, keys[0])
		return err
	}},
	{"Eval", "Scripter", func(ctx context.Context, c driver.Conn, keys []string) error {
		_, err := c.(driver.Scripter).Eval(ctx, callScript, keys)
		return err
	}},
	{"EvalSha", "Scripter", func(ctx context.Context, c driver.Conn, keys []string) error {
		_, err := c.(driver.Scripter).EvalSha(ctx, sha1hex(callScript), keys)
		return err
	}},
	{"EvalShaWait", "ReplicaWaiter", func(ctx context.Context, c driver.Conn, keys []string) error {
		_, _, err := c.(driver.ReplicaWaiter).EvalShaWait(ctx, sha1hex(callScript), keys, nil, 0, 100*time.Millisecond)
		return err
	}},
	{"EvalWait", "ReplicaWaiter", func(ctx context.Context, c driver.Conn, keys []string) error {
		_, _, err := c.(driver.ReplicaWaiter).EvalWait(ctx, callScript, keys, nil, 0, 100*time.Millisecond)
		return err
	}},
	{"Watch", "Watcher", func(ctx context.Context, c driver.Conn, keys []string) error {
		return c.(driver.Watcher).Watch(ctx, keys, func(driver.Tx) error { return nil })
	}},
	{"Subscribe", "Subscriber", func(ctx context.Context, c driver.Conn, keys []string) error {
		s, err := c.(driver.Subscriber).Subscribe(ctx, func(string, string) {})
		if err != nil {
			return err
		}
		defer s.Close()
		return s.Add(ctx, keys[0])
	}},
}

// has reports whether c implements capability need.
func has(c driver.Conn, need string) bool {
	var ok bool
	switch need {
	case "":
		ok = true
	case "Scripter":
		_, ok = c.(driver.Scripter)
	case "Watcher":
		_, ok = c.(driver.Watcher)
	case "ReplicaWaiter":
		_, ok = c.(driver.ReplicaWaiter)
	case "Subscriber":
		_, ok = c.(driver.Subscriber)
	}
	return ok
}

// loadCallScript loads callScript on the node that serves keys, through
// a connection of its own.
func loadCallScript(t *testing.T, e *env, keys []string) {
	t.Helper()
	c := e.conn()
	s, ok := c.(driver.Scripter)
	if !ok {
		return
	}
	if _, err := s.Eval(bg(), callScript, keys); err != nil {
		t.Fatalf("Eval to load the script: %v", err)
	}
}

// unsupported reports whether err says the driver's ReplicaWaiter cannot
// serve this backend, which it may answer whatever the context.
func unsupported(c call, err error) bool {
	return c.need == "ReplicaWaiter" && errors.Is(err, errors.ErrUnsupported)
}

// testContext: a context's error stays visible through errors.Is, for
// every method.
func testContext(t *testing.T, h Harness) {
	t.Run("Cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(bg())
		cancel()
		for _, c := range calls {
			t.Run(c.name, func(t *testing.T) {
				e := newEnv(t, h)
				conn := e.conn()
				if !has(conn, c.need) {
					t.Skip("driver does not implement driver." + c.need)
				}
				keys := []string{e.key("k")}
				loadCallScript(t, e, keys)
				err := c.run(ctx, conn, keys)
				if unsupported(c, err) {
					t.Skipf("the driver's ReplicaWaiter cannot serve this backend: %v", err)
				}
				wantIs(t, c.name+" with a cancelled context", err, context.Canceled)
			})
		}
		t.Run("TxGet", func(t *testing.T) {
			e, _, w := watcher(t, h)
			k := e.key("k")
			var inner error
			err := w.Watch(bg(), []string{k}, func(tx driver.Tx) error {
				_, _, inner = tx.Get(ctx, k)
				return inner
			})
			wantIs(t, "Tx.Get with a cancelled context", inner, context.Canceled)
			wantIs(t, "Watch whose Tx.Get failed", err, context.Canceled)
		})
		t.Run("TxExec", func(t *testing.T) {
			e, c, w := watcher(t, h)
			k := e.key("k")
			var inner error
			err := w.Watch(bg(), []string{k}, func(tx driver.Tx) error {
				_, inner = tx.Exec(ctx, []string{"SET", k, "v", "PX", "10000"})
				return inner
			})
			wantIs(t, "Tx.Exec with a cancelled context", inner, context.Canceled)
			wantIs(t, "Watch whose Tx.Exec failed", err, context.Canceled)
			if v, ok, _ := c.Get(bg(), k); ok {
				t.Fatalf("Tx.Exec with a cancelled context wrote: key holds %q", v)
			}
		})
		t.Run("SubscriptionAdd", func(t *testing.T) {
			e, _, sub := capable[driver.Subscriber](t, h, "Subscriber")
			s, err := sub.Subscribe(bg(), func(string, string) {})
			if err != nil {
				t.Fatalf("Subscribe: %v", err)
			}
			defer s.Close()
			wantIs(t, "Subscription.Add with a cancelled context", s.Add(ctx, e.key("ch")), context.Canceled)
		})
	})
	t.Run("Deadline", func(t *testing.T) {
		testSilentCalls(t, h, fmt.Sprintf("with a %v deadline", silentDeadline), silentDeadline+silentMargin, context.DeadlineExceeded,
			func() (context.Context, context.CancelFunc) { return context.WithTimeout(bg(), silentDeadline) })
	})
	t.Run("InFlight", func(t *testing.T) {
		// A call cancelled while it waits for the server's reply returns
		// at once with the context's error: honouring a deadline is not
		// enough, a caller (relock's Close, a request handler) cancels.
		testSilentCalls(t, h, fmt.Sprintf("cancelled after %v", inFlightAfter), inFlightAfter+silentMargin, context.Canceled,
			func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(bg())
				timer := time.AfterFunc(inFlightAfter, cancel)
				return ctx, func() { timer.Stop(); cancel() }
			})
	})
}

// testSilentCalls runs every call at once, each on a connection of its own
// to a server that never answers, with a context from newCtx, and then
// checks, in a subtest per call, that it returned within limit with an
// error matching want. how says what the context does, for messages.
func testSilentCalls(t *testing.T, h Harness, how string, limit time.Duration, want error, newCtx func() (context.Context, context.CancelFunc)) {
	type outcome struct {
		err  error
		took time.Duration
		hung bool
		skip string
	}
	results := make([]outcome, len(calls))
	keys := []string{"{relock-conformance-silent}k"}
	var wg sync.WaitGroup
	for i, c := range calls {
		if _, _, ok := h.known(t.Name() + "/" + c.name); ok {
			continue // its subtest says so
		}
		conn := silentConn(t, h)
		if !has(conn, c.need) {
			results[i].skip = "driver does not implement driver." + c.need
			continue
		}
		wg.Go(func() {
			ctx, cancel := newCtx()
			defer cancel()
			start := time.Now()
			done := make(chan error, 1)
			go func() { done <- c.run(ctx, conn, keys) }()
			select {
			case results[i].err = <-done:
			case <-time.After(silentGiveUp):
				// Ends when the server hangs up, at the end of t.
				results[i].hung = true
			}
			results[i].took = time.Since(start).Round(time.Millisecond)
		})
	}
	wg.Wait()
	for i, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			h.skipKnown(t)
			r := results[i]
			switch {
			case r.skip != "":
				t.Skip(r.skip)
			case r.hung:
				t.Fatalf("%s on a server that never answers, %s, had not returned after %v: the context is ignored", c.name, how, silentGiveUp)
			case unsupported(c, r.err):
				t.Skipf("the driver's ReplicaWaiter cannot serve this backend: %v", r.err)
			case r.took > limit:
				t.Fatalf("%s on a server that never answers, %s, returned after %v (%v): the promise is its context plus %v at most, %v", c.name, how, r.took, r.err, silentMargin, limit)
			}
			wantIs(t, fmt.Sprintf("%s on a server that never answers, %s (returned after %v)", c.name, how, r.took), r.err, want)
		})
	}
}

// testAfterClose: after Close, every call fails with an error; none
// panics, none succeeds.
func testAfterClose(t *testing.T, h Harness) {
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, h)
			conn := e.conn()
			if !has(conn, c.need) {
				t.Skip("driver does not implement driver." + c.need)
			}
			keys := []string{e.key("k")}
			loadCallScript(t, e, keys)
			if err := conn.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			ctx, cancel := context.WithTimeout(bg(), 10*time.Second)
			defer cancel()
			err, panicked := callSafely(func() error { return c.run(ctx, conn, keys) })
			switch {
			case panicked != nil:
				t.Fatalf("%s after Close panicked: %v", c.name, panicked)
			case err == nil:
				t.Fatalf("%s after Close succeeded; it must fail with an error", c.name)
			case errors.Is(err, context.DeadlineExceeded):
				t.Fatalf("%s after Close hung until its context ended: %v", c.name, err)
			}
		})
	}
}

// callSafely runs f and returns its error, or what it panicked with.
func callSafely(f func() error) (err error, panicked any) {
	defer func() { panicked = recover() }()
	return f(), nil
}

// testScriptErrorIsNotNoScript: only a NOSCRIPT reply matches ErrNoScript,
// not any script error whose text says "script".
func testScriptErrorIsNotNoScript(t *testing.T, h Harness) {
	e, _, s := scripter(t, h)
	for _, src := range []string{
		"return redis.error_reply('ERR my script failed')",
		"return redis.error_reply('ERR no such script or NOSCRIPT text in the middle')",
		"return redis.call('GET')", // wrong number of arguments, raised inside the script
	} {
		_, err := s.Eval(bg(), src, []string{e.key("k")})
		if err == nil {
			t.Fatalf("Eval(%q) gave no error", src)
		}
		wantNotIs(t, fmt.Sprintf("Eval(%q)", src), err, driver.ErrNoScript, driver.ErrWrongType)
	}
}

// testTxGetWrongType: Tx.Get, like Conn.Get, reports a key of another type
// as ErrWrongType, not as a missing key.
func testTxGetWrongType(t *testing.T, h Harness) {
	if h.SetWrongType == nil {
		t.Skip("Harness.SetWrongType is nil")
	}
	e, _, w := watcher(t, h)
	k := e.key("hash")
	setWrongType(t, h, k)
	var got error
	_ = w.Watch(bg(), []string{k}, func(tx driver.Tx) error {
		v, ok, err := tx.Get(bg(), k)
		if err == nil {
			got = fmt.Errorf("Tx.Get of a hash = %q, %v, nil", v, ok)
			return nil
		}
		got = err
		return err
	})
	wantIs(t, "Tx.Get of a hash", got, driver.ErrWrongType)
}

// testErrorInsideExec: a command that fails inside EXEC (WRONGTYPE in
// EXEC's reply array) gives an error that matches ErrWrongType and not
// ErrTxAborted, and the key of the other type is left as it was.
func testErrorInsideExec(t *testing.T, h Harness) {
	if h.SetWrongType == nil {
		t.Skip("Harness.SetWrongType is nil")
	}
	e, c, w := watcher(t, h)
	k, hash := e.key("k"), e.key("hash")
	setWrongType(t, h, hash)
	if ok, err := c.SetNX(bg(), k, "v0", 10*time.Second); err != nil || !ok {
		t.Fatalf("SetNX: %v, %v", ok, err)
	}
	var replies []any
	err := w.Watch(bg(), []string{k, hash}, func(tx driver.Tx) error {
		var err error
		replies, err = tx.Exec(bg(),
			[]string{"SET", k, "v1", "PX", "10000"},
			[]string{"INCR", hash},
			[]string{"GET", k},
		)
		return err
	})
	if err == nil {
		t.Fatalf("Exec with a WRONGTYPE reply inside EXEC gave no error (replies %#v): a failed command reads as a success", replies)
	}
	wantNotIs(t, "a WRONGTYPE reply inside EXEC", err, driver.ErrTxAborted)
	wantIs(t, "a WRONGTYPE reply inside EXEC", err, driver.ErrWrongType)
	if _, _, err := c.Get(bg(), hash); !errors.Is(err, driver.ErrWrongType) {
		t.Fatalf("after the failed EXEC, Get of the hash gives %v: the hash was overwritten", err)
	}
}

// testQueueError: a command that the server refuses while queueing
// (EXECABORT) gives an error that does not match ErrTxAborted.
func testQueueError(t *testing.T, h Harness) {
	e, _, w := watcher(t, h)
	k := e.key("k")
	err := w.Watch(bg(), []string{k}, func(tx driver.Tx) error {
		_, err := tx.Exec(bg(), []string{"SET", k, "v", "PX", "10000"}, []string{"RELOCK-NO-SUCH-COMMAND", k})
		return err
	})
	if err == nil {
		t.Fatal("Exec with an unknown command gave no error")
	}
	wantNotIs(t, "an EXECABORT", err, driver.ErrTxAborted, driver.ErrWrongType, driver.ErrNoScript)
}

// testExpiryAborts: as in Redis 7, a watched key that expires between
// WATCH and EXEC aborts the transaction.
func testExpiryAborts(t *testing.T, h Harness) {
	e, c, w := watcher(t, h)
	k := e.key("k")
	if ok, err := c.SetNX(bg(), k, "old", 300*time.Millisecond); err != nil || !ok {
		t.Fatalf("SetNX: %v, %v", ok, err)
	}
	err := w.Watch(bg(), []string{k}, func(tx driver.Tx) error {
		if v, ok, err := tx.Get(bg(), k); err != nil || !ok || v != "old" {
			return fmt.Errorf("Tx.Get = %q, %v, %v; want \"old\"", v, ok, err)
		}
		e.advance(400 * time.Millisecond)
		_, err := tx.Exec(bg(), []string{"SET", k, "ours", "PX", "10000"})
		return err
	})
	wantIs(t, "EXEC after the watched key expired", err, driver.ErrTxAborted)
	if v, ok, _ := c.Get(bg(), k); ok {
		t.Fatalf("an aborted transaction wrote: key holds %q", v)
	}
}

// testRelockCommands: Exec passes through every command relock sends, with
// their options.
func testRelockCommands(t *testing.T, h Harness) {
	e, c, w := watcher(t, h)
	k, n := e.key("k"), e.key("n")
	var replies []any
	err := w.Watch(bg(), []string{k, n}, func(tx driver.Tx) error {
		var err error
		replies, err = tx.Exec(bg(),
			[]string{"SET", k, "v", "PX", "5000"},
			[]string{"SET", k, "w", "NX", "PX", "5000"},
			[]string{"GET", k},
			[]string{"INCR", n},
			[]string{"INCR", n},
			[]string{"PEXPIRE", n, "5000"},
			[]string{"DEL", k},
			[]string{"PTTL", k},
		)
		return err
	})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	want := []any{"OK", nil, "v", int64(1), int64(2), int64(1), int64(1), int64(-2)}
	if !reflect.DeepEqual(replies, want) {
		t.Fatalf("Exec replies = %#v, want %#v", replies, want)
	}
	// PX reached the server: the key has a TTL.
	err = w.Watch(bg(), []string{n}, func(tx driver.Tx) error {
		replies, err = tx.Exec(bg(), []string{"PTTL", n})
		return err
	})
	if err != nil || len(replies) != 1 {
		t.Fatalf("Exec PTTL = %#v, %v", replies, err)
	}
	if ms, ok := replies[0].(int64); !ok || ms <= 0 || ms > 5000 {
		t.Fatalf("PTTL after PEXPIRE 5000 = %#v, want 1..5000", replies[0])
	}
	if _, ok, err := c.Get(bg(), k); ok || err != nil {
		t.Fatalf("Get after DEL = %v, %v; want missing", ok, err)
	}
}

// testReplicaWaiter: NOSCRIPT from EvalShaWait, and WAIT on the script's
// own connection.
func testReplicaWaiter(t *testing.T, h Harness) {
	waiter := func(t *testing.T) (*env, driver.ReplicaWaiter) {
		e, _, w := capable[driver.ReplicaWaiter](t, h, "ReplicaWaiter")
		return e, w
	}
	skipUnsupported := func(t *testing.T, err error) {
		t.Helper()
		if errors.Is(err, errors.ErrUnsupported) {
			t.Skipf("the driver's ReplicaWaiter cannot serve this backend: %v", err)
		}
	}
	t.Run("NoScript", func(t *testing.T) {
		e, w := waiter(t)
		keys := []string{e.key("k")}
		src := "return redis.call('SET', KEYS[1], 'noscript-" + e.prefix + "', 'PX', 10000)"
		sha := sha1hex(src)
		_, _, err := w.EvalShaWait(bg(), sha, keys, nil, h.Replicas, time.Second)
		skipUnsupported(t, err)
		wantIs(t, "EvalShaWait of a script never loaded", err, driver.ErrNoScript)
		if h.FlushScripts == nil {
			return
		}
		if r, _, err := w.EvalWait(bg(), src, keys, nil, h.Replicas, time.Second); err != nil || r != "OK" {
			t.Fatalf("EvalWait = %#v, %v", r, err)
		}
		if r, _, err := w.EvalShaWait(bg(), sha, keys, nil, h.Replicas, time.Second); err != nil || r != "OK" {
			t.Fatalf("EvalShaWait after EvalWait loaded the script = %#v, %v", r, err)
		}
		h.FlushScripts(t)
		_, _, err = w.EvalShaWait(bg(), sha, keys, nil, h.Replicas, time.Second)
		wantIs(t, "EvalShaWait after FlushScripts", err, driver.ErrNoScript)
	})
	t.Run("Wire", func(t *testing.T) { testWire(t, h) })
	t.Run("Timeout", func(t *testing.T) { testWaitTimeout(t, h) })
	t.Run("SameConnection", func(t *testing.T) {
		if h.StallReplicas == nil {
			t.Skip("Harness.StallReplicas is nil")
		}
		if h.Replicas < 1 {
			t.Skip("Harness.Replicas is 0: no replica to stall")
		}
		e, w := waiter(t)
		keys := []string{e.key("k")}
		const script = "return redis.call('SET', KEYS[1], ARGV[1], 'PX', 10000)"
		// The stall stays below a cluster's usual node timeout (2 s in
		// this repository's tests).
		const stall, timeout = time.Second, 300 * time.Millisecond
		for i, step := range []struct {
			name string
			do   func(arg string) (any, int, error)
		}{
			{"EvalWait", func(arg string) (any, int, error) {
				return w.EvalWait(bg(), script, keys, []string{arg}, h.Replicas, timeout)
			}},
			{"EvalShaWait", func(arg string) (any, int, error) {
				return w.EvalShaWait(bg(), sha1hex(script), keys, []string{arg}, h.Replicas, timeout)
			}},
		} {
			// Healthy first: a WAIT that every replica answers covers
			// every write made before it, on any connection (the
			// replication offset is one for the server), and loads the
			// script. A WAIT sent anywhere but after this call's own
			// write then returns at once, stall or not.
			r, acked, err := w.EvalWait(bg(), script, keys, []string{"healthy"}, h.Replicas, 5*time.Second)
			skipUnsupported(t, err)
			if err != nil || r != "OK" || acked < h.Replicas {
				t.Fatalf("EvalWait with the replicas up = %#v, %d, %v; want OK, %d", r, acked, err, h.Replicas)
			}
			if h.Addr != "" {
				// The driver's own WAIT covers the writes before it on
				// its connection: if it sent WAIT first, its script's
				// write is not covered. A write and WAIT of the suite's
				// own, after it, cover everything.
				n, err := syncReplicas(h.Addr, e.key("sync"), h.Replicas, 5*time.Second)
				if err != nil || n < int64(h.Replicas) {
					t.Fatalf("WAIT %d on a connection of the suite's own, replicas up = %d, %v", h.Replicas, n, err)
				}
			}
			h.StallReplicas(t, stall)
			start := time.Now()
			r, acked, err = step.do(fmt.Sprintf("stalled%d", i))
			took := time.Since(start)
			if err != nil || r != "OK" {
				t.Fatalf("%s while the replicas stall = %#v, %d, %v; want OK", step.name, r, acked, err)
			}
			if acked >= h.Replicas {
				t.Fatalf("%s while the replicas stall: %d acknowledgements, want fewer than %d: WAIT went on a connection other than the script's, or before the script (or StallReplicas did not stall)", step.name, acked, h.Replicas)
			}
			if took < timeout-5*time.Millisecond {
				t.Fatalf("%s while the replicas stall returned after %v, before WAIT's %v timeout: WAIT did not wait for this call's write", step.name, took.Round(time.Millisecond), timeout)
			}
		}
	})
}
