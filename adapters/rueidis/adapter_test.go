package rueidisadapter_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/relock-go/relock"
	rueidisadapter "github.com/relock-go/relock/adapters/rueidis"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

func sha(src string) string {
	h := sha1.Sum([]byte(src))
	return hex.EncodeToString(h[:])
}

// protocols runs f with a RESP3 client (the rueidis default) and a RESP2
// one (AlwaysRESP2): the adapter must map replies the same way over both.
func protocols(t *testing.T, b backend, f func(t *testing.T, c rueidis.Client)) {
	t.Helper()
	for _, resp2 := range []bool{false, true} {
		name := "resp3"
		if resp2 {
			name = "resp2"
		}
		t.Run(name, func(t *testing.T) {
			f(t, newClient(t, b, func(o *rueidis.ClientOption) {
				if resp2 {
					o.AlwaysRESP2 = true
					o.DisableCache = true // rueidis caches only over RESP3
				}
			}))
		})
	}
}

func TestSetNXAndGet(t *testing.T) {
	ctx := context.Background()
	onRedis(t, func(t *testing.T, b backend) {
		c := newClient(t, b, nil)
		conn := rueidisadapter.New(c)
		key := newKey(t, c)

		if v, ok, err := conn.Get(ctx, key); v != "" || ok || err != nil {
			t.Fatalf("Get of a missing key = %q, %v, %v; want \"\", false, nil", v, ok, err)
		}
		if ok, err := conn.SetNX(ctx, key, "tok", 1500*time.Millisecond); !ok || err != nil {
			t.Fatalf("SetNX = %v, %v; want true, nil", ok, err)
		}
		// PX is millisecond-exact: 1500 ms, not 1 or 2 s (EX) nor 1500 s.
		pttl, err := c.Do(ctx, c.B().Pttl().Key(key).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		if pttl <= 1400 || pttl > 1500 {
			t.Fatalf("PTTL after SetNX with 1500ms = %d; want (1400, 1500]", pttl)
		}
		if ok, err := conn.SetNX(ctx, key, "other", time.Second); ok || err != nil {
			t.Fatalf("SetNX on a held key = %v, %v; want false, nil", ok, err)
		}
		if v, ok, err := conn.Get(ctx, key); v != "tok" || !ok || err != nil {
			t.Fatalf("Get = %q, %v, %v; want \"tok\", true, nil", v, ok, err)
		}
		// Sub-millisecond parts are dropped, not rounded up.
		key2 := newKey(t, c)
		if ok, err := conn.SetNX(ctx, key2, "tok", 2*time.Millisecond+999*time.Microsecond); !ok || err != nil {
			t.Fatalf("SetNX = %v, %v", ok, err)
		}
		if pttl, _ := c.Do(ctx, c.B().Pttl().Key(key2).Build()).AsInt64(); pttl > 2 {
			t.Fatalf("PTTL after SetNX with 2.999ms = %d; want at most 2", pttl)
		}
	})
}

func TestEvalReplies(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name, src string
		want      any
	}{
		{"nil", "return nil", nil},
		{"false", "return false", nil},
		{"true", "return true", int64(1)},
		{"int", "return 42", int64(42)},
		{"negative", "return -3", int64(-3)},
		{"number truncated", "return 3.7", int64(3)},
		{"string", "return 'hello'", "hello"},
		{"empty string", "return ''", ""},
		{"status", "return {ok='OK'}", "OK"},
		{"status reply", "return redis.status_reply('PONG')", "PONG"},
		{"call status", "return redis.call('SET', KEYS[1], ARGV[1])", "OK"},
		{"call get", "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])", "a1"},
		{"call nil", "return redis.call('GET', KEYS[1] .. ':missing')", nil},
		{"empty array", "return {}", []any{}},
		{"array", "return {1, 'a', KEYS[1] == KEYS[1]}", []any{int64(1), "a", int64(1)}},
		{"nested", "return {1, {2, 'b', {}}, {ok='OK'}}", []any{int64(1), []any{int64(2), "b", []any{}}, "OK"}},
		{"false in array", "return {1, false, 'x'}", []any{int64(1), nil, "x"}},
		{"array ends at nil", "return {1, nil, 3}", []any{int64(1)}},
		{"keys and args", "return {#KEYS, ARGV[1], ARGV[2]}", []any{int64(1), "a1", "a2"}},
		{"obtain-shaped", "return {1, -1}", []any{int64(1), int64(-1)}},
	}
	onRedis(t, func(t *testing.T, b backend) {
		protocols(t, b, func(t *testing.T, c rueidis.Client) {
			conn := rueidisadapter.New(c)
			for _, tc := range cases {
				key := newKey(t, c)
				got, err := conn.Eval(ctx, tc.src, []string{key}, "a1", "a2")
				if err != nil || !reflect.DeepEqual(got, tc.want) {
					t.Errorf("%s: Eval(%q) = %#v, %v; want %#v", tc.name, tc.src, got, err, tc.want)
				}
				got, err = conn.EvalSha(ctx, sha(tc.src), []string{key}, "a1", "a2")
				if err != nil || !reflect.DeepEqual(got, tc.want) {
					t.Errorf("%s: EvalSha(%q) = %#v, %v; want %#v", tc.name, tc.src, got, err, tc.want)
				}
			}
		})
	})
}

// TestEvalRESP3Types covers the types a script can return only after
// redis.setresp(3) (miniredis ignores setresp). The adapter gives what
// driver.ConvertReply makes of them: what the same script gives a RESP2
// client, but for a RESP3 false, which RESP2 sends as 0 and ConvertReply
// maps to nil, as a script's false reads under RESP2.
func TestEvalRESP3Types(t *testing.T) {
	ctx := context.Background()
	b := backend{addr: testredis.Addr(t)}
	cases := []struct {
		name, src string
		want      any
	}{
		{"double", "redis.setresp(3); return {double=3.5}", "3.5"},
		{"bool true", "redis.setresp(3); return true", int64(1)},
		{"bool false", "redis.setresp(3); return false", nil},
		{"map", "redis.setresp(3); return {map={b=2, a='x'}}", []any{"a", "x", "b", int64(2)}},
		{"hgetall", "redis.call('HSET', KEYS[1], 'f', 'v'); redis.setresp(3); return redis.call('HGETALL', KEYS[1])", []any{"f", "v"}},
		{"nested map", "redis.setresp(3); return {1, {map={k={double=0.5}}}}", []any{int64(1), []any{"k", "0.5"}}},
		{"nil", "redis.setresp(3); return nil", nil},
	}
	protocols(t, b, func(t *testing.T, c rueidis.Client) {
		conn := rueidisadapter.New(c)
		for _, tc := range cases {
			key := newKey(t, c)
			got, err := conn.Eval(ctx, tc.src, []string{key})
			if tc.name == "bool false" && strings.HasSuffix(t.Name(), "resp2") {
				tc.want = int64(0) // the server's own RESP2 reply
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s: Eval(%q) = %#v, %v; want %#v", tc.name, tc.src, got, err, tc.want)
			}
		}
	})
}

func TestErrorTranslation(t *testing.T) {
	ctx := context.Background()
	onRedis(t, func(t *testing.T, b backend) {
		protocols(t, b, func(t *testing.T, c rueidis.Client) {
			conn := rueidisadapter.New(c)
			hash := newKey(t, c)
			setHash(t, c, hash)

			// NOSCRIPT, from a script the server never saw and after
			// SCRIPT FLUSH.
			_, err := conn.EvalSha(ctx, sha("return 'never loaded "+hash+"'"), nil)
			checkReplyErr(t, "EvalSha of an unknown script", err, driver.ErrNoScript, "NOSCRIPT")
			src := "return 'flushed " + hash + "'"
			if _, err := conn.Eval(ctx, src, nil); err != nil {
				t.Fatal(err)
			}
			if v, err := conn.EvalSha(ctx, sha(src), nil); v != "flushed "+hash || err != nil {
				t.Fatalf("EvalSha of a loaded script = %v, %v", v, err)
			}
			do(t, c, "SCRIPT", "FLUSH")
			_, err = conn.EvalSha(ctx, sha(src), nil)
			checkReplyErr(t, "EvalSha after SCRIPT FLUSH", err, driver.ErrNoScript, "NOSCRIPT")

			// WRONGTYPE, from a command and from inside a script.
			_, _, err = conn.Get(ctx, hash)
			checkReplyErr(t, "Get of a hash", err, driver.ErrWrongType, "WRONGTYPE")
			getSrc := "return redis.call('GET', KEYS[1])"
			_, err = conn.Eval(ctx, getSrc, []string{hash})
			checkReplyErr(t, "Eval GET of a hash", err, driver.ErrWrongType, "WRONGTYPE")
			do(t, c, "SCRIPT", "LOAD", getSrc)
			_, err = conn.EvalSha(ctx, sha(getSrc), []string{hash})
			checkReplyErr(t, "EvalSha GET of a hash", err, driver.ErrWrongType, "WRONGTYPE")
			err = conn.Watch(ctx, []string{hash}, func(tx driver.Tx) error {
				_, _, err := tx.Get(ctx, hash)
				return err
			})
			checkReplyErr(t, "Tx.Get of a hash", err, driver.ErrWrongType, "WRONGTYPE")
			err = conn.Watch(ctx, []string{hash}, func(tx driver.Tx) error {
				_, err := tx.Exec(ctx, []string{"GET", hash})
				return err
			})
			checkReplyErr(t, "GET of a hash in EXEC", err, driver.ErrWrongType, "WRONGTYPE")

			// SET NX on a hash is not an error: Redis answers nil.
			if ok, err := conn.SetNX(ctx, hash, "tok", time.Second); ok || err != nil {
				t.Errorf("SetNX on a hash = %v, %v; want false, nil", ok, err)
			}

			// Other error replies pass through as rueidis reports them.
			for _, src := range []string{
				"return redis.error_reply('MYERR custom failure')",
				"return {1, {err='MYERR nested failure'}}",
			} {
				_, err := conn.Eval(ctx, src, nil)
				var re *rueidis.RedisError
				if !errors.As(err, &re) || errors.Is(err, driver.ErrWrongType) || errors.Is(err, driver.ErrNoScript) ||
					!strings.Contains(err.Error(), "MYERR") {
					t.Errorf("Eval(%q) error = %v (%T); want a plain *rueidis.RedisError", src, err, err)
				}
			}
		})
	})
}

// checkReplyErr checks that err matches sentinel under errors.Is, is still
// a *rueidis.RedisError under errors.As, and keeps the server's text.
func checkReplyErr(t *testing.T, what string, err, sentinel error, text string) {
	t.Helper()
	var re *rueidis.RedisError
	switch {
	case !errors.Is(err, sentinel):
		t.Errorf("%s: error %v (%T) does not match %v", what, err, err, sentinel)
	case !errors.As(err, &re):
		t.Errorf("%s: error %v does not unwrap to *rueidis.RedisError", what, err)
	case !strings.Contains(err.Error(), text):
		t.Errorf("%s: error %q lost the server's text %q", what, err, text)
	default:
		t.Logf("%s: %v", what, err)
	}
}

func TestWatch(t *testing.T) {
	ctx := context.Background()
	onRedis(t, func(t *testing.T, b backend) {
		protocols(t, b, func(t *testing.T, c rueidis.Client) {
			conn := rueidisadapter.New(c)
			other := newClient(t, b, nil)

			t.Run("Exec", func(t *testing.T) {
				key, missing := newKey(t, c), newKey(t, c)
				do(t, c, "SET", key, "v1")
				var replies []any
				err := conn.Watch(ctx, []string{key}, func(tx driver.Tx) error {
					v, ok, err := tx.Get(ctx, key)
					if v != "v1" || !ok || err != nil {
						return fmt.Errorf("Tx.Get = %q, %v, %v", v, ok, err)
					}
					if _, ok, err := tx.Get(ctx, missing); ok || err != nil {
						return fmt.Errorf("Tx.Get of a missing key = %v, %v", ok, err)
					}
					replies, err = tx.Exec(ctx,
						[]string{"PTTL", key},
						[]string{"SET", key, "v2"},
						[]string{"GET", key},
						[]string{"GET", missing},
						[]string{"PEXPIRE", key, "5000"},
						[]string{"DEL", key, missing},
					)
					return err
				})
				want := []any{int64(-1), "OK", "v2", nil, int64(1), int64(1)}
				if err != nil || !reflect.DeepEqual(replies, want) {
					t.Fatalf("Watch/Exec = %#v, %v; want %#v", replies, err, want)
				}
				// An empty transaction is fine too.
				err = conn.Watch(ctx, []string{key}, func(tx driver.Tx) error {
					replies, err = tx.Exec(ctx)
					return err
				})
				if err != nil || len(replies) != 0 {
					t.Fatalf("empty Exec = %#v, %v", replies, err)
				}
			})

			t.Run("Aborted", func(t *testing.T) {
				key := newKey(t, c)
				do(t, c, "SET", key, "mine")
				calls := 0
				err := conn.Watch(ctx, []string{key}, func(tx driver.Tx) error {
					calls++
					if _, _, err := tx.Get(ctx, key); err != nil {
						return err
					}
					// Another client changes the key between WATCH and EXEC.
					do(t, other, "SET", key, "theirs")
					_, err := tx.Exec(ctx, []string{"DEL", key})
					return err
				})
				if !errors.Is(err, driver.ErrTxAborted) || calls != 1 {
					t.Fatalf("Watch = %v after %d calls; want ErrTxAborted after 1", err, calls)
				}
				if v, _, _ := conn.Get(ctx, key); v != "theirs" {
					t.Fatalf("key = %q after an aborted DEL; want \"theirs\"", v)
				}
			})

			t.Run("FnError", func(t *testing.T) {
				errMine := errors.New("mine")
				err := conn.Watch(ctx, []string{newKey(t, c)}, func(driver.Tx) error { return errMine })
				if err != errMine {
					t.Fatalf("Watch = %v; want fn's error itself", err)
				}
			})

			t.Run("QueueError", func(t *testing.T) {
				// A command rejected while queued (here GET without its
				// key) makes EXEC fail with EXECABORT; the adapter reports
				// the rejection itself. (miniredis discards the transaction
				// for arity errors but, unlike Redis, not for unknown
				// commands.)
				key := newKey(t, c)
				err := conn.Watch(ctx, []string{key}, func(tx driver.Tx) error {
					_, err := tx.Exec(ctx, []string{"SET", key, "x"}, []string{"GET"})
					return err
				})
				var re *rueidis.RedisError
				if err == nil || errors.Is(err, driver.ErrTxAborted) || !errors.As(err, &re) ||
					!strings.Contains(err.Error(), "wrong number of arguments") {
					t.Fatalf("Exec with a malformed command = %v; want its rejection", err)
				}
				t.Logf("Exec with a malformed command: %v", err)
				if _, ok, _ := conn.Get(ctx, key); ok {
					t.Fatal("a discarded transaction ran its SET")
				}
			})

			t.Run("TxAfterReturn", func(t *testing.T) {
				key := newKey(t, c)
				var kept driver.Tx
				if err := conn.Watch(ctx, []string{key}, func(tx driver.Tx) error { kept = tx; return nil }); err != nil {
					t.Fatal(err)
				}
				if _, _, err := kept.Get(ctx, key); err == nil {
					t.Fatal("Tx.Get after Watch returned succeeded")
				}
				if _, err := kept.Exec(ctx, []string{"DEL", key}); err == nil {
					t.Fatal("Tx.Exec after Watch returned succeeded")
				}
			})

			t.Run("BadArguments", func(t *testing.T) {
				if err := conn.Watch(ctx, nil, func(driver.Tx) error { return nil }); err == nil {
					t.Error("Watch without keys succeeded")
				}
				if err := conn.Watch(ctx, []string{"k"}, nil); err == nil {
					t.Error("Watch with a nil fn succeeded")
				}
				err := conn.Watch(ctx, []string{newKey(t, c)}, func(tx driver.Tx) error {
					_, err := tx.Exec(ctx, []string{})
					return err
				})
				if err == nil {
					t.Error("Exec of an empty command succeeded")
				}
				// The rueidis builder panics on SUBSCRIBE; the adapter
				// returns an error instead.
				err = conn.Watch(ctx, []string{newKey(t, c)}, func(tx driver.Tx) error {
					_, err := tx.Exec(ctx, []string{"SUBSCRIBE", "ch"})
					return err
				})
				if err == nil || !strings.Contains(err.Error(), "cannot build") {
					t.Errorf("Exec of SUBSCRIBE: %v; want a build error", err)
				}
			})
		})
	})
}

// TestWatchLeavesNoWatch pins the pool to one dedicated connection, so that
// every Watch reuses it, and checks that a Watch whose fn returns without
// EXEC (normally, with an error, by panicking, with a cancelled context)
// leaves that connection unwatched: otherwise the change another client
// makes afterwards would abort the next, unrelated transaction.
func TestWatchLeavesNoWatch(t *testing.T) {
	ctx := context.Background()
	onRedis(t, func(t *testing.T, b backend) {
		c := newClient(t, b, func(o *rueidis.ClientOption) { o.BlockingPoolSize = 1 })
		conn := rueidisadapter.New(c)
		other := newClient(t, b, nil)

		leave := map[string]func(tx driver.Tx, key string) error{
			"return nil":   func(driver.Tx, string) error { return nil },
			"return error": func(driver.Tx, string) error { return errors.New("fn failed") },
			"panic":        func(driver.Tx, string) error { panic("fn panicked") },
			"after Get":    func(tx driver.Tx, key string) error { _, _, err := tx.Get(ctx, key); return err },
			"cancelled Exec": func(tx driver.Tx, key string) error {
				cctx, cancel := context.WithCancel(ctx)
				cancel()
				_, err := tx.Exec(cctx, []string{"SET", key, "y"})
				if !errors.Is(err, context.Canceled) {
					return fmt.Errorf("Exec with a cancelled context: %v", err)
				}
				return nil
			},
		}
		for name, fn := range leave {
			t.Run(name, func(t *testing.T) {
				watched, next := newKey(t, c), newKey(t, c)
				func() {
					defer func() { _ = recover() }()
					err := conn.Watch(ctx, []string{watched}, func(tx driver.Tx) error { return fn(tx, watched) })
					if err != nil && err.Error() != "fn failed" {
						t.Errorf("Watch: %v", err)
					}
				}()
				do(t, other, "SET", watched, "changed")
				err := conn.Watch(ctx, []string{next}, func(tx driver.Tx) error {
					_, err := tx.Exec(ctx, []string{"SET", next, "ok"})
					return err
				})
				if err != nil {
					t.Fatalf("next transaction on the same connection: %v (the old WATCH survived?)", err)
				}
			})
		}
	})
}

func TestContextErrors(t *testing.T) {
	onRedis(t, func(t *testing.T, b backend) {
		c := newClient(t, b, nil)
		conn := rueidisadapter.New(c)
		key := newKey(t, c)
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel2()

		for _, tc := range []struct {
			ctx  context.Context
			want error
		}{{cancelled, context.Canceled}, {expired, context.DeadlineExceeded}} {
			ctx := tc.ctx
			calls := map[string]error{}
			_, calls["SetNX"] = conn.SetNX(ctx, key, "v", time.Second)
			_, _, calls["Get"] = conn.Get(ctx, key)
			_, calls["Eval"] = conn.Eval(ctx, "return 1", []string{key})
			_, calls["EvalSha"] = conn.EvalSha(ctx, sha("return 1"), []string{key})
			calls["Watch"] = conn.Watch(ctx, []string{key}, func(driver.Tx) error { return nil })
			_, _, calls["EvalShaWait"] = conn.EvalShaWait(ctx, sha("return 1"), []string{key}, nil, 1, time.Second)
			_, _, calls["EvalWait"] = conn.EvalWait(ctx, "return redis.call('SET', KEYS[1], 'v')", []string{key}, nil, 1, time.Second)
			calls["Tx.Get"] = conn.Watch(context.Background(), []string{key}, func(tx driver.Tx) error {
				_, _, err := tx.Get(ctx, key)
				return err
			})
			for name, err := range calls {
				if !errors.Is(err, tc.want) {
					t.Errorf("%s with a done context: %v; want %v", name, err, tc.want)
				}
			}
		}
		if _, ok, _ := conn.Get(context.Background(), key); ok {
			t.Error("SetNX with a done context wrote the key")
		}

		// Through relock: Obtain on a done context reports both.
		locks, err := relock.New(conn)
		if err != nil {
			t.Fatal(err)
		}
		defer locks.Close()
		_, err = locks.Obtain(cancelled, key, time.Second)
		if !errors.Is(err, context.Canceled) || !errors.Is(err, relock.ErrNotObtained) {
			t.Errorf("Obtain with a cancelled context: %v", err)
		}
		// A context cancelled while Obtain waits for a held lock.
		do(t, c, "SET", key, "someone else", "PX", "10000")
		wctx, wcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer wcancel()
		_, err = locks.Obtain(wctx, key, time.Second)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, relock.ErrNotObtained) {
			t.Errorf("Obtain cut short by its context: %v", err)
		}
	})
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	t.Run("UserClient", func(t *testing.T) {
		onRedis(t, func(t *testing.T, b backend) {
			c := newClient(t, b, nil)
			conn := rueidisadapter.New(c)
			key := newKey(t, c)
			if _, err := conn.SetNX(ctx, key, "v", time.Second); err != nil {
				t.Fatal(err)
			}
			if err := conn.Close(); err != nil {
				t.Fatal(err)
			}
			if err := conn.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			// The user's client still works...
			if v, err := c.Do(ctx, c.B().Get().Key(key).Build()).ToString(); v != "v" || err != nil {
				t.Fatalf("user client after Conn.Close: %q, %v", v, err)
			}
			// ...while the Conn refuses work.
			if _, _, err := conn.Get(ctx, key); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Get after Close: %v; want net.ErrClosed", err)
			}
			// And a relock.Client over it leaves it open too.
			locks, err := relock.New(rueidisadapter.New(c))
			if err != nil {
				t.Fatal(err)
			}
			if err := locks.Close(); err != nil {
				t.Fatal(err)
			}
			if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
				t.Fatalf("user client after relock.Client.Close: %v", err)
			}
		})
	})

	t.Run("OwnedClient", func(t *testing.T) {
		onRedis(t, func(t *testing.T, b backend) {
			admin := newClient(t, b, nil)
			name := "relock-close-" + strings.TrimPrefix(newKey(t, admin), "relock-test:rueidis:")
			before := serverConns(t, admin, b, name)
			conn, err := rueidisadapter.Driver{}.Open("redis://" + b.addr + "/0?client_name=" + name)
			if err != nil {
				t.Fatal(err)
			}
			// Concurrent calls make rueidis start its pipelining
			// goroutines, which goleak (TestMain) would report if Close
			// left them running.
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					if _, _, err := conn.Get(ctx, "relock-test:rueidis:missing"); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if n := serverConns(t, admin, b, name); n <= before {
				t.Fatalf("%d connections after Open, %d before", n, before)
			}
			if err := conn.Close(); err != nil {
				t.Fatal(err)
			}
			if err := conn.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			deadline := time.Now().Add(2 * time.Second)
			for serverConns(t, admin, b, name) != before {
				if time.Now().After(deadline) {
					t.Fatalf("the owned client's connections still open after Close")
				}
				time.Sleep(10 * time.Millisecond)
			}
			// goleak in TestMain also proves the owned client's goroutines ended.
		})
	})

	t.Run("NilClient", func(t *testing.T) {
		// An interface holding a nil pointer is as nil as nil itself.
		var typedNil rueidis.Client = (*nilClient)(nil)
		for _, conn := range []*rueidisadapter.Conn{rueidisadapter.New(nil), rueidisadapter.New(typedNil), nil} {
			if err := conn.Validate(); !errors.Is(err, rueidisadapter.ErrNilClient) {
				t.Errorf("Validate: %v; want ErrNilClient", err)
			}
			if conn != nil {
				if l, err := relock.New(conn); !errors.Is(err, relock.ErrInvalidArgument) || !errors.Is(err, rueidisadapter.ErrNilClient) {
					if l != nil {
						_ = l.Close()
					}
					t.Errorf("relock.New: %v; want an error matching relock.ErrInvalidArgument and ErrNilClient", err)
				}
			}
			if _, err := conn.SetNX(ctx, "k", "v", time.Second); !errors.Is(err, rueidisadapter.ErrNilClient) {
				t.Errorf("SetNX on a nil client: %v; want ErrNilClient", err)
			}
			if _, _, err := conn.Get(ctx, "k"); err == nil {
				t.Error("Get on a nil client succeeded")
			}
			if _, err := conn.Eval(ctx, "return 1", nil); err == nil {
				t.Error("Eval on a nil client succeeded")
			}
			if _, err := conn.EvalSha(ctx, sha("return 1"), nil); err == nil {
				t.Error("EvalSha on a nil client succeeded")
			}
			if err := conn.Watch(ctx, []string{"k"}, func(driver.Tx) error { return nil }); err == nil {
				t.Error("Watch on a nil client succeeded")
			}
			if _, _, err := conn.EvalShaWait(ctx, sha("return 1"), nil, nil, 1, time.Second); err == nil {
				t.Error("EvalShaWait on a nil client succeeded")
			}
			if _, _, err := conn.EvalWait(ctx, "return 1", nil, nil, 1, time.Second); err == nil {
				t.Error("EvalWait on a nil client succeeded")
			}
			if err := conn.Close(); err != nil {
				t.Errorf("Close on a nil client: %v", err)
			}
		}
	})
}

// nilClient is a rueidis.Client implementation for the typed-nil test; its
// methods are never called.
type nilClient struct{ rueidis.Client }

// serverConns counts the server's connections named name (CLIENT LIST).
func serverConns(t *testing.T, admin rueidis.Client, b backend, name string) int {
	t.Helper()
	list, err := admin.Do(context.Background(), admin.B().ClientList().Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(list, " name="+name+" ")
}

func TestDriverRegistration(t *testing.T) {
	if !slices.Contains(relock.Drivers(), "rueidis") {
		t.Fatalf("relock.Drivers() = %v; want it to list rueidis", relock.Drivers())
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	onRedis(t, func(t *testing.T, b backend) {
		// The URL of the brief, 127.0.0.1:6379/0, unless RELOCK_REDIS_ADDR
		// says otherwise. (internal/onmini runs it on miniredis, where
		// rueidis builds a cluster client.)
		locks, err := relock.Open("rueidis", "redis://"+b.addr+"/0")
		if err != nil {
			t.Fatal(err)
		}
		defer locks.Close()
		roundTrip(t, ctx, locks, newKey(t, newClient(t, b, nil)))

		// The WATCH path over an opened client.
		conn, err := rueidisadapter.Driver{}.Open("redis://" + b.addr + "/0")
		if err != nil {
			t.Fatal(err)
		}
		wlocks, err := relock.New(watchOnly{conn, conn.(driver.Watcher)})
		if err != nil {
			t.Fatal(err)
		}
		defer wlocks.Close()
		roundTrip(t, ctx, wlocks, newKey(t, newClient(t, b, nil)))
	})

	t.Run("RESP2", func(t *testing.T) {
		locks, err := relock.Open("rueidis", testredis.URL(t)+"/0?protocol=2")
		if err != nil {
			t.Fatal(err)
		}
		defer locks.Close()
		roundTrip(t, ctx, locks, newKey(t, newClient(t, backend{addr: testredis.Addr(t)}, nil)))
	})

	t.Run("BadDSN", func(t *testing.T) {
		for _, dsn := range []string{
			"",
			"ftp://127.0.0.1:6379",
			"redis://127.0.0.1:6379/notanumber",
			"redis://127.0.0.1:6379/0/1",
			"redis://user:s3cret@127.0.0.1:6379/?db=x",
			"redis://user:s3cret@%zz",
		} {
			locks, err := relock.Open("rueidis", dsn)
			if err == nil {
				locks.Close()
				t.Errorf("Open(%q) succeeded", dsn)
				continue
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Open(%q) error shows the password: %v", dsn, err)
			}
			t.Logf("Open(%q): %v", dsn, err)
		}
	})
}

// watchOnly hides the Scripter side of a Conn, so that relock takes the
// WATCH/MULTI/EXEC path.
type watchOnly struct {
	driver.Conn
	driver.Watcher
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	onRedis(t, func(t *testing.T, b backend) {
		c := newClient(t, b, nil)
		conns := map[string]driver.Conn{
			"scripts": rueidisadapter.New(c),
			"watch":   watchOnly{rueidisadapter.New(c), rueidisadapter.New(c)},
		}
		for name, conn := range conns {
			t.Run(name, func(t *testing.T) {
				locks, err := relock.New(conn)
				if err != nil {
					t.Fatal(err)
				}
				defer locks.Close()
				roundTrip(t, ctx, locks, newKey(t, c))
			})
		}
	})
}

// roundTrip obtains, inspects, refreshes and releases a lock on key, and
// checks that a second owner is kept out meanwhile.
func roundTrip(t *testing.T, ctx context.Context, locks *relock.Client, key string) {
	t.Helper()
	lock, err := locks.Obtain(ctx, key, 5*time.Second)
	if err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	if _, err := locks.TryObtain(ctx, key, time.Second); !errors.Is(err, relock.ErrNotObtained) {
		t.Fatalf("TryObtain of a held lock: %v; want ErrNotObtained", err)
	}
	if ttl, err := lock.TTL(ctx); err != nil || ttl <= 4*time.Second || ttl > 5*time.Second {
		t.Fatalf("TTL = %v, %v; want about 5s", ttl, err)
	}
	if err := lock.Refresh(ctx, 20*time.Second); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if ttl, err := lock.TTL(ctx); err != nil || ttl <= 19*time.Second {
		t.Fatalf("TTL after Refresh = %v, %v; want about 20s", ttl, err)
	}
	if err := lock.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := lock.Release(ctx); err != nil {
		t.Fatalf("second Release: %v; want nil (still released)", err)
	}
	if err := lock.Refresh(ctx, time.Second); !errors.Is(err, relock.ErrNotHeld) || !errors.Is(err, relock.ErrReleased) {
		t.Fatalf("Refresh after Release: %v; want ErrNotHeld and ErrReleased", err)
	}
	again, err := locks.TryObtain(ctx, key, time.Second)
	if err != nil {
		t.Fatalf("TryObtain after Release: %v", err)
	}
	if err := again.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestWrongTypeThroughRelock checks that a hash at the lock's key stops
// Obtain at once with relock.ErrWrongType, on both paths.
func TestWrongTypeThroughRelock(t *testing.T) {
	ctx := context.Background()
	onRedis(t, func(t *testing.T, b backend) {
		c := newClient(t, b, nil)
		key := newKey(t, c)
		setHash(t, c, key)
		locks, err := relock.New(rueidisadapter.New(c))
		if err != nil {
			t.Fatal(err)
		}
		defer locks.Close()
		_, err = locks.Obtain(ctx, key, time.Second, relock.WithMaxWait(time.Second))
		if !errors.Is(err, relock.ErrWrongType) || !errors.Is(err, driver.ErrWrongType) {
			t.Fatalf("Obtain on a hash: %v; want ErrWrongType", err)
		}
	})
}

// TestReplicaWaiter runs EvalShaWait and EvalWait against a private primary
// with one replica. (internal/onmini runs them against miniredis, whose
// WAIT answers 0.)
func TestReplicaWaiter(t *testing.T) {
	ctx := context.Background()
	t.Run("replica", func(t *testing.T) {
		rp := adaptertest.StartReplicaPair(t)
		// A small blocking pool, which Dedicate draws from: a reply left
		// unread would show in the next call.
		c := newClient(t, backend{addr: rp.Primary.Addr()}, func(o *rueidis.ClientOption) { o.BlockingPoolSize = 1 })
		conn := rueidisadapter.New(c)
		rp.CheckWaits(t, ctx, conn)
		rp.CheckAcks(t, ctx, conn, "1.5", nil) // 0.8 s: the 300 ms WAIT and the 300 ms EvalShaWait outlasted it under load (issue 19 item 4)
	})
}
