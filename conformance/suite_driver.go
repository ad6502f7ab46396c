package conformance

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/relock-go/relock/driver"
)

func testDriver(t *testing.T, h Harness) {
	raw := func(t *testing.T) (*env, driver.Conn) {
		e := newEnv(t, h)
		return e, e.conn()
	}
	mustGet := func(t *testing.T, c driver.Conn, key string) (string, bool) {
		t.Helper()
		v, ok, err := c.Get(bg(), key)
		if err != nil {
			t.Fatalf("Get(%q): %v", key, err)
		}
		return v, ok
	}
	mustSetNX := func(t *testing.T, c driver.Conn, key, value string, ttl time.Duration, want bool) {
		t.Helper()
		ok, err := c.SetNX(bg(), key, value, ttl)
		if err != nil {
			t.Fatalf("SetNX(%q): %v", key, err)
		}
		if ok != want {
			t.Fatalf("SetNX(%q) = %v, want %v", key, ok, want)
		}
	}

	t.Run("SetNX", func(t *testing.T) {
		e, c := raw(t)
		k := e.key("k")
		mustSetNX(t, c, k, "v1", 10*time.Second, true)
		if v, ok := mustGet(t, c, k); !ok || v != "v1" {
			t.Fatalf("Get after SetNX = %q, %v; want \"v1\", true", v, ok)
		}
	})
	t.Run("SetNXExisting", func(t *testing.T) {
		e, c := raw(t)
		k := e.key("k")
		mustSetNX(t, c, k, "v1", 10*time.Second, true)
		mustSetNX(t, c, k, "v2", 10*time.Second, false)
		if v, _ := mustGet(t, c, k); v != "v1" {
			t.Fatalf("SetNX on an existing key overwrote it: Get = %q, want \"v1\"", v)
		}
	})
	t.Run("SetNXExpires", func(t *testing.T) {
		e, c := raw(t)
		k := e.key("k")
		mustSetNX(t, c, k, "v", 300*time.Millisecond, true)
		e.advance(100 * time.Millisecond)
		if _, ok := mustGet(t, c, k); !ok {
			t.Fatal("a key set with PX 300 ms was gone after 100 ms")
		}
		e.advance(400 * time.Millisecond)
		if v, ok := mustGet(t, c, k); ok {
			t.Fatalf("a key set with PX 300 ms still holds %q after 500 ms: the TTL was ignored", v)
		}
		mustSetNX(t, c, k, "w", time.Second, true)
	})
	t.Run("GetMissing", func(t *testing.T) {
		e, c := raw(t)
		v, ok, err := c.Get(bg(), e.key("missing"))
		if err != nil || ok || v != "" {
			t.Fatalf("Get of a missing key = %q, %v, %v; want \"\", false, nil", v, ok, err)
		}
	})
	t.Run("WrongType", func(t *testing.T) {
		if h.SetWrongType == nil {
			t.Skip("Harness.SetWrongType is nil")
		}
		e, c := raw(t)
		k := e.key("hash")
		setWrongType(t, h, k)
		_, _, err := c.Get(bg(), k)
		wantIs(t, "Get of a hash", err, driver.ErrWrongType)
		ok, err := c.SetNX(bg(), k, "v", time.Second)
		if err != nil || ok {
			t.Fatalf("SetNX on a hash = %v, %v; want false, nil (SET NX finds the key)", ok, err)
		}
	})
	t.Run("CloseTwice", func(t *testing.T) {
		_, c := raw(t)
		for i := range 2 {
			if _, panicked := callSafely(c.Close); panicked != nil {
				t.Fatalf("Close number %d panicked: %v", i+1, panicked)
			}
		}
	})
	t.Run("ScripterOrWatcher", func(t *testing.T) { testScripterOrWatcher(t, h) })
	t.Run("ConcurrentUse", func(t *testing.T) { testConcurrentUse(t, h) })
	t.Run("Context", func(t *testing.T) { testContext(t, h) })
	t.Run("AfterClose", func(t *testing.T) { testAfterClose(t, h) })
	t.Run("Scripter", func(t *testing.T) { testScripter(t, h) })
	t.Run("Watcher", func(t *testing.T) { testWatcher(t, h) })
	t.Run("ReplicaWaiter", func(t *testing.T) { testReplicaWaiter(t, h) })
	t.Run("Subscriber", func(t *testing.T) { testSubscriber(t, h) })
	t.Run("Values", func(t *testing.T) { testValues(t, h) })
	t.Run("Network", func(t *testing.T) { testNetwork(t, h) })
	t.Run("Validate", func(t *testing.T) { testValidate(t, h) })
}

// capable returns a fresh env, its connection and the connection's
// capability T, or skips t naming T when the driver lacks it.
func capable[T any](t *testing.T, h Harness, name string) (*env, driver.Conn, T) {
	t.Helper()
	e := newEnv(t, h)
	c := e.conn()
	v, ok := c.(T)
	if !ok {
		t.Skip("driver does not implement driver." + name)
	}
	return e, c, v
}

func scripter(t *testing.T, h Harness) (*env, driver.Conn, driver.Scripter) {
	t.Helper()
	return capable[driver.Scripter](t, h, "Scripter")
}

func testScripter(t *testing.T, h Harness) {
	t.Run("Replies", func(t *testing.T) {
		e, c, s := scripter(t, h)
		k := e.key("k")
		if ok, err := c.SetNX(bg(), k, "val", 10*time.Second); err != nil || !ok {
			t.Fatalf("SetNX: %v, %v", ok, err)
		}
		for _, tc := range []struct {
			name, src string
			want      any
		}{
			{"nil", "return redis.call('GET', KEYS[2])", nil},
			{"false", "return false", nil},
			{"integer", "return 42", int64(42)},
			{"negative", "return -3", int64(-3)},
			{"bulk", "return redis.call('GET', KEYS[1])", "val"},
			{"status", "return redis.status_reply('OK')", "OK"},
			{"array", "return {1, 'two', {3, redis.call('GET', KEYS[1])}}", []any{int64(1), "two", []any{int64(3), "val"}}},
			{"empty array", "return {}", []any{}},
		} {
			got, err := s.Eval(bg(), tc.src, []string{k, e.key("missing")})
			if err != nil {
				t.Fatalf("Eval %s: %v", tc.name, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Eval %s = %#v (%T), want %#v (%T)", tc.name, got, got, tc.want, tc.want)
			}
		}
	})
	t.Run("KeysAndArgs", func(t *testing.T) {
		e, _, s := scripter(t, h)
		got, err := s.Eval(bg(), "return {KEYS[1], KEYS[2], ARGV[1], ARGV[2], #KEYS, #ARGV}", []string{e.key("a"), e.key("b")}, "x", "")
		want := []any{e.key("a"), e.key("b"), "x", "", int64(2), int64(2)}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("Eval = %#v, %v; want %#v", got, err, want)
		}
	})
	t.Run("EvalSha", func(t *testing.T) {
		e, _, s := scripter(t, h)
		// A key routes every call to one node of a cluster, whose script
		// cache is its own.
		keys := []string{e.key("sha")}
		src := "return 'sha-" + e.prefix + "'"
		sha := sha1hex(src)
		_, err := s.EvalSha(bg(), sha, keys)
		wantIs(t, "EvalSha of a script never loaded", err, driver.ErrNoScript)
		if got, err := s.Eval(bg(), src, keys); err != nil || got != "sha-"+e.prefix {
			t.Fatalf("Eval = %#v, %v", got, err)
		}
		got, err := s.EvalSha(bg(), sha, keys)
		if err != nil || got != "sha-"+e.prefix {
			t.Fatalf("EvalSha after Eval loaded the script = %#v, %v; want %q", got, err, "sha-"+e.prefix)
		}
	})
	t.Run("WrongType", func(t *testing.T) {
		if h.SetWrongType == nil {
			t.Skip("Harness.SetWrongType is nil")
		}
		e, _, s := scripter(t, h)
		k := e.key("hash")
		setWrongType(t, h, k)
		_, err := s.Eval(bg(), "return redis.call('GET', KEYS[1])", []string{k})
		wantIs(t, "a script that GETs a hash", err, driver.ErrWrongType)
	})
	t.Run("ErrorReply", func(t *testing.T) {
		e, _, s := scripter(t, h)
		_, err := s.Eval(bg(), "return redis.error_reply('ERR conformance boom')", []string{e.key("boom")})
		if err == nil {
			t.Fatal("a script returning an error reply gave no error")
		}
		wantNotIs(t, "a plain error reply", err, driver.ErrNoScript, driver.ErrWrongType)
	})
	t.Run("ScriptErrorIsNotNoScript", func(t *testing.T) { testScriptErrorIsNotNoScript(t, h) })
}

func watcher(t *testing.T, h Harness) (*env, driver.Conn, driver.Watcher) {
	t.Helper()
	return capable[driver.Watcher](t, h, "Watcher")
}

func testWatcher(t *testing.T, h Harness) {
	t.Run("Exec", func(t *testing.T) {
		e, c, w := watcher(t, h)
		k := e.key("k")
		if ok, err := c.SetNX(bg(), k, "v0", 10*time.Second); err != nil || !ok {
			t.Fatalf("SetNX: %v, %v", ok, err)
		}
		var replies []any
		err := w.Watch(bg(), []string{k}, func(tx driver.Tx) error {
			v, ok, err := tx.Get(bg(), k)
			if err != nil || !ok || v != "v0" {
				t.Errorf("Tx.Get = %q, %v, %v; want \"v0\", true, nil", v, ok, err)
			}
			if _, ok, err := tx.Get(bg(), k+":missing"); ok || err != nil {
				t.Errorf("Tx.Get of a missing key = %v, %v; want false, nil", ok, err)
			}
			replies, err = tx.Exec(bg(),
				[]string{"SET", k, "v1"},
				[]string{"GET", k},
				[]string{"PEXPIRE", k, "5000"},
				[]string{"DEL", k},
				[]string{"GET", k},
				[]string{"PTTL", k},
			)
			return err
		})
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		want := []any{"OK", "v1", int64(1), int64(1), nil, int64(-2)}
		if !reflect.DeepEqual(replies, want) {
			t.Fatalf("Exec replies = %#v, want %#v", replies, want)
		}
	})
	t.Run("Aborted", func(t *testing.T) {
		e, c, w := watcher(t, h)
		other := e.conn()
		k := e.key("k")
		err := w.Watch(bg(), []string{k}, func(tx driver.Tx) error {
			if _, _, err := tx.Get(bg(), k); err != nil {
				return err
			}
			// Another connection writes the watched key.
			if ok, err := other.SetNX(bg(), k, "theirs", 10*time.Second); err != nil || !ok {
				t.Errorf("SetNX from another connection: %v, %v", ok, err)
			}
			_, err := tx.Exec(bg(), []string{"SET", k, "ours"})
			return err
		})
		wantIs(t, "EXEC after a watched key changed", err, driver.ErrTxAborted)
		if v, _, _ := c.Get(bg(), k); v != "theirs" {
			t.Fatalf("an aborted transaction wrote: key holds %q, want \"theirs\"", v)
		}
	})
	t.Run("FnError", func(t *testing.T) {
		e, _, w := watcher(t, h)
		boom := errors.New("conformance: fn failed")
		err := w.Watch(bg(), []string{e.key("k")}, func(driver.Tx) error { return boom })
		wantIs(t, "Watch whose fn failed", err, boom)
	})
	t.Run("WatchAfterNoExec", func(t *testing.T) {
		// A Watch whose fn ran no EXEC must not leave the watch behind on
		// a pooled connection: a later transaction must not abort because
		// of it.
		e, c, w := watcher(t, h)
		k1, k2 := e.key("k1"), e.key("k2")
		for range 4 {
			if err := w.Watch(bg(), []string{k1}, func(driver.Tx) error { return nil }); err != nil {
				t.Fatalf("Watch: %v", err)
			}
		}
		if ok, err := c.SetNX(bg(), k1, "changed", 10*time.Second); err != nil || !ok {
			t.Fatalf("SetNX: %v, %v", ok, err)
		}
		for i := range 4 {
			err := w.Watch(bg(), []string{k2}, func(tx driver.Tx) error {
				_, err := tx.Exec(bg(), []string{"GET", k2})
				return err
			})
			if err != nil {
				t.Fatalf("transaction %d on another key after watches without EXEC: %v", i, err)
			}
		}
	})
	t.Run("GetWrongType", func(t *testing.T) { testTxGetWrongType(t, h) })
	t.Run("ErrorInsideExec", func(t *testing.T) { testErrorInsideExec(t, h) })
	t.Run("QueueError", func(t *testing.T) { testQueueError(t, h) })
	t.Run("ExpiryAborts", func(t *testing.T) { testExpiryAborts(t, h) })
	t.Run("RelockCommands", func(t *testing.T) { testRelockCommands(t, h) })
}
