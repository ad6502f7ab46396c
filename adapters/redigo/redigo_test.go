package redigo_test

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"go.uber.org/goleak"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/redigo"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newPool returns a pool dialing addr, closed when t ends.
func newPool(t testing.TB, addr string) *redis.Pool {
	t.Helper()
	p := &redis.Pool{
		MaxIdle: 8,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", addr)
		},
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// dial returns a plain redigo connection to addr, closed when t ends.
func dial(t testing.TB, addr string) redis.Conn {
	t.Helper()
	c, err := redis.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// command runs one command on a fresh connection to addr.
func command(t testing.TB, addr, cmd string, args ...any) any {
	t.Helper()
	c := dial(t, addr)
	r, err := c.Do(cmd, args...)
	if err != nil {
		t.Fatalf("%s %v: %v", cmd, args, err)
	}
	_ = c.Close()
	return r
}

// key returns a unique key name, safe on the shared server, deleted when t
// ends if addr is set.
func key(t testing.TB, addr string) string {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	k := "relock-test:redigo:" + t.Name() + ":" + hex.EncodeToString(b[:])
	if addr != "" {
		t.Cleanup(func() {
			if c, err := redis.Dial("tcp", addr); err == nil {
				_, _ = c.Do("DEL", k)
				_ = c.Close()
			}
		})
	}
	return k
}

// backends runs fn against the shared real server (the same checks on
// miniredis are in internal/onmini, through the conformance suite).
func backends(t *testing.T, fn func(t *testing.T, addr string)) {
	fn(t, testredis.Addr(t))
}

func TestConformance(t *testing.T) {
	newConn := func(t *testing.T, b adaptertest.Backend) driver.Conn {
		return redigo.New(newPool(t, b.Addr))
	}
	adaptertest.RunConformance(t, newConn)
}

func TestSetNXAndGet(t *testing.T) {
	backends(t, func(t *testing.T, addr string) {
		ctx := context.Background()
		c := redigo.New(newPool(t, addr))
		k := key(t, addr)

		if v, ok, err := c.Get(ctx, k); err != nil || ok || v != "" {
			t.Fatalf("Get of a missing key = %q, %v, %v; want \"\", false, nil", v, ok, err)
		}
		set, err := c.SetNX(ctx, k, "tok1", 1500*time.Millisecond)
		if err != nil || !set {
			t.Fatalf("SetNX on a free key = %v, %v; want true, nil", set, err)
		}
		pttl, err := redis.Int64(dial(t, addr).Do("PTTL", k))
		if err != nil {
			t.Fatal(err)
		}
		if pttl <= 1400 || pttl > 1500 {
			t.Errorf("PTTL after SetNX with 1500ms = %d; want in (1400, 1500]", pttl)
		}
		set, err = c.SetNX(ctx, k, "tok2", time.Second)
		if err != nil || set {
			t.Fatalf("SetNX on a taken key = %v, %v; want false, nil", set, err)
		}
		if v, ok, err := c.Get(ctx, k); err != nil || !ok || v != "tok1" {
			t.Fatalf("Get = %q, %v, %v; want \"tok1\", true, nil", v, ok, err)
		}
		short := key(t, addr)
		if set, err := c.SetNX(ctx, short, "tok", 20*time.Millisecond); err != nil || !set {
			t.Fatalf("SetNX with 20ms = %v, %v", set, err)
		}
		time.Sleep(50 * time.Millisecond)
		if _, ok, err := c.Get(ctx, short); err != nil || ok {
			t.Fatalf("Get after expiry: ok %v, err %v; want false, nil", ok, err)
		}
	})
}

func TestEvalReplies(t *testing.T) {
	backends(t, func(t *testing.T, addr string) {
		ctx := context.Background()
		c := redigo.New(newPool(t, addr))
		k := key(t, addr)
		cases := []struct {
			name, script string
			want         any
		}{
			{"nil", "return nil", nil},
			{"false", "return false", nil},
			{"int", "return 42", int64(42)},
			{"negative", "return -3", int64(-3)},
			{"string", "return 'abc'", "abc"},
			{"empty string", "return ''", ""},
			{"status", "return redis.call('SET', KEYS[1], ARGV[1])", "OK"},
			{"custom status", "return redis.status_reply('FINE')", "FINE"},
			{"keys and args", "return {KEYS[1], ARGV[1], ARGV[2]}", []any{k, "v", "w"}},
			{"empty array", "return {}", []any{}},
			{"array", "return {1, 'a', false, 2}", []any{int64(1), "a", nil, int64(2)}},
			{"nested", "return {1, {2, {'x', redis.call('GET', KEYS[1])}}, redis.status_reply('OK')}",
				[]any{int64(1), []any{int64(2), []any{"x", "v"}}, "OK"}},
		}
		for _, tc := range cases {
			got, err := c.Eval(ctx, tc.script, []string{k}, "v", "w")
			if err != nil {
				t.Errorf("%s: Eval: %v", tc.name, err)
				continue
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s: Eval = %#v; want %#v", tc.name, got, tc.want)
			}
			sum := sha1.Sum([]byte(tc.script))
			got, err = c.EvalSha(ctx, hex.EncodeToString(sum[:]), []string{k}, "v", "w")
			if err != nil {
				t.Errorf("%s: EvalSha after Eval: %v", tc.name, err)
				continue
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s: EvalSha = %#v; want %#v", tc.name, got, tc.want)
			}
		}

		// Error replies, at the top or nested, are errors with the server's text.
		for _, script := range []string{
			"return redis.error_reply('MYERR boom')",
			"return {1, redis.error_reply('MYERR boom')}",
		} {
			got, err := c.Eval(ctx, script, nil)
			if err == nil || !strings.Contains(err.Error(), "MYERR boom") {
				t.Errorf("Eval(%q) = %#v, %v; want an error with MYERR boom", script, got, err)
			}
			if errors.Is(err, driver.ErrNoScript) || errors.Is(err, driver.ErrWrongType) {
				t.Errorf("Eval(%q) error %v matches a driver sentinel", script, err)
			}
		}
	})
}

func TestNoScript(t *testing.T) {
	backends(t, func(t *testing.T, addr string) {
		ctx := context.Background()
		c := redigo.New(newPool(t, addr))
		script := "return 'noscript-" + key(t, "") + "'"
		sum := sha1.Sum([]byte(script))
		sha := hex.EncodeToString(sum[:])

		_, err := c.EvalSha(ctx, sha, nil)
		if !errors.Is(err, driver.ErrNoScript) {
			t.Fatalf("EvalSha of an unknown script: %v; want driver.ErrNoScript", err)
		}
		if !strings.Contains(err.Error(), "NOSCRIPT") {
			t.Errorf("error %q lost the server's text", err)
		}
		var re redis.Error
		if !errors.As(err, &re) {
			t.Errorf("error %v does not unwrap to a redis.Error", err)
		}
		if errors.Is(err, driver.ErrWrongType) {
			t.Errorf("NOSCRIPT error matches ErrWrongType")
		}

		if _, err := c.Eval(ctx, script, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.EvalSha(ctx, sha, nil); err != nil {
			t.Fatalf("EvalSha after Eval: %v", err)
		}
		command(t, addr, "SCRIPT", "FLUSH")
		if _, err := c.EvalSha(ctx, sha, nil); !errors.Is(err, driver.ErrNoScript) {
			t.Fatalf("EvalSha after SCRIPT FLUSH: %v; want driver.ErrNoScript", err)
		}
	})
}

func TestWrongType(t *testing.T) {
	backends(t, func(t *testing.T, addr string) {
		ctx := context.Background()
		c := redigo.New(newPool(t, addr))
		k := key(t, addr)
		command(t, addr, "HSET", k, "f", "v")

		check := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, driver.ErrWrongType) {
				t.Errorf("%s on a hash: %v; want driver.ErrWrongType", what, err)
				return
			}
			if !strings.Contains(err.Error(), "WRONGTYPE") {
				t.Errorf("%s: error %q lost the server's text", what, err)
			}
			if errors.Is(err, driver.ErrNoScript) {
				t.Errorf("%s: WRONGTYPE error matches ErrNoScript", what)
			}
			t.Logf("%s: %v", what, err)
		}
		_, _, err := c.Get(ctx, k)
		check("Get", err)
		script := "return redis.call('GET', KEYS[1])"
		_, err = c.Eval(ctx, script, []string{k})
		check("Eval", err)
		// Load it explicitly: EVAL of a failing script caches it on Redis,
		// not on every server.
		sha, err := redis.String(dial(t, addr).Do("SCRIPT", "LOAD", script))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.EvalSha(ctx, sha, []string{k})
		check("EvalSha", err)
		_, err = c.Eval(ctx, "return redis.pcall('GET', KEYS[1])", []string{k})
		check("Eval with pcall", err)
		err = c.Watch(ctx, []string{k}, func(tx driver.Tx) error {
			_, _, err := tx.Get(ctx, k)
			return err
		})
		check("Tx.Get", err)

		// SET NX on a hash is not an error: the key exists.
		if set, err := c.SetNX(ctx, k, "tok", time.Second); err != nil || set {
			t.Errorf("SetNX on a hash = %v, %v; want false, nil", set, err)
		}

		// Through relock, both paths report relock.ErrWrongType at once.
		for name, conn := range map[string]driver.Conn{"scripts": c, "watch": watchOnly{c}} {
			client, err := relock.New(conn)
			if err != nil {
				t.Fatal(err)
			}
			if name == "watch" {
				// The watch path obtains with SET NX then GET.
				_, err = client.TryObtain(ctx, k, time.Second)
			} else {
				_, err = client.Obtain(ctx, k, time.Second)
			}
			if !errors.Is(err, relock.ErrWrongType) {
				t.Errorf("%s: Obtain on a hash: %v; want relock.ErrWrongType", name, err)
			}
		}
	})
}

// watchOnly hides Scripter so that relock takes the WATCH path.
type watchOnly struct{ *redigo.Conn }

func (w watchOnly) Eval() {} // shadows Conn.Eval: watchOnly is no driver.Scripter

var _ driver.Watcher = watchOnly{}

func TestWatchExec(t *testing.T) {
	backends(t, func(t *testing.T, addr string) {
		ctx := context.Background()
		c := redigo.New(newPool(t, addr))
		k, k2 := key(t, addr), key(t, addr)

		err := c.Watch(ctx, []string{k}, func(tx driver.Tx) error {
			if _, ok, err := tx.Get(ctx, k); err != nil || ok {
				t.Errorf("Tx.Get of a missing key: ok %v, err %v", ok, err)
			}
			got, err := tx.Exec(ctx,
				[]string{"SET", k, "x"},
				[]string{"GET", k},
				[]string{"PTTL", k},
				[]string{"GET", k2},
				[]string{"EVAL", "return {1, {'a', false}}", "0"},
				[]string{"DEL", k},
			)
			if err != nil {
				return err
			}
			want := []any{"OK", "x", int64(-1), nil, []any{int64(1), []any{"a", nil}}, int64(1)}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Exec = %#v; want %#v", got, want)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}

		// fn's error comes back as is.
		errMine := errors.New("mine")
		if err := c.Watch(ctx, []string{k}, func(driver.Tx) error { return errMine }); err != errMine {
			t.Errorf("Watch returned %v; want fn's error", err)
		}
	})
}

func TestWatchAborted(t *testing.T) {
	backends(t, func(t *testing.T, addr string) {
		ctx := context.Background()
		c := redigo.New(newPool(t, addr))
		other := redigo.New(newPool(t, addr))
		k := key(t, addr)
		if set, err := c.SetNX(ctx, k, "a", time.Minute); err != nil || !set {
			t.Fatal(set, err)
		}
		err := c.Watch(ctx, []string{k}, func(tx driver.Tx) error {
			if v, ok, err := tx.Get(ctx, k); err != nil || !ok || v != "a" {
				t.Errorf("Tx.Get = %q, %v, %v", v, ok, err)
			}
			if _, err := other.Eval(ctx, "return redis.call('SET', KEYS[1], 'b')", []string{k}); err != nil {
				return err
			}
			r, err := tx.Exec(ctx, []string{"SET", k, "c"})
			if r != nil {
				t.Errorf("aborted Exec replied %#v", r)
			}
			return err
		})
		if !errors.Is(err, driver.ErrTxAborted) {
			t.Fatalf("Watch after a concurrent change: %v; want driver.ErrTxAborted", err)
		}
		if v, _, _ := c.Get(ctx, k); v != "b" {
			t.Errorf("key = %q after the aborted transaction; want b", v)
		}
	})
}

func TestExecErrors(t *testing.T) {
	backends(t, func(t *testing.T, addr string) {
		ctx := context.Background()
		pc := &singleConnPool{c: dial(t, addr)}
		c := redigo.New(pc)
		k, h := key(t, addr), key(t, addr)
		command(t, addr, "SET", k, "text")
		command(t, addr, "HSET", h, "f", "v")

		exec := func(cmds ...[]string) error {
			return c.Watch(ctx, []string{k}, func(tx driver.Tx) error {
				_, err := tx.Exec(ctx, cmds...)
				return err
			})
		}
		// A command that fails when EXEC runs it.
		err := exec([]string{"SET", k, "1x"}, []string{"INCR", k})
		if err == nil || !strings.Contains(err.Error(), "not an integer") {
			t.Errorf("Exec with a failing INCR: %v; want the server's error", err)
		}
		err = exec([]string{"GET", h})
		if !errors.Is(err, driver.ErrWrongType) {
			t.Errorf("Exec with GET of a hash: %v; want driver.ErrWrongType", err)
		}
		// A command refused while queuing aborts EXEC.
		err = exec([]string{"SET", k, "never"}, []string{"SET"})
		if err == nil {
			t.Errorf("Exec with a malformed command succeeded")
		}
		if v, _, _ := c.Get(ctx, k); v != "1x" {
			t.Errorf("key = %q; want 1x (the refused transaction must not run)", v)
		}
		if err := exec([]string{}); err == nil {
			t.Errorf("Exec with an empty command succeeded")
		}
		// The connection came back without MULTI or WATCH state.
		assertClean(t, pc.c, addr, k)
	})
}

// singleConnPool hands out one connection again and again; Close of what it
// hands out does nothing, so no pool cleans up after the adapter.
type singleConnPool struct {
	mu sync.Mutex
	c  redis.Conn
}

func (p *singleConnPool) GetContext(ctx context.Context) (redis.Conn, error) {
	p.mu.Lock()
	return noClose{p.c, &p.mu}, nil
}

type noClose struct {
	redis.Conn
	mu *sync.Mutex
}

func (n noClose) Close() error { n.mu.Unlock(); return nil }
func (n noClose) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	return redis.DoContext(n.Conn, ctx, cmd, args...)
}
func (n noClose) ReceiveContext(ctx context.Context) (any, error) {
	return redis.ReceiveContext(n.Conn, ctx)
}

// assertClean checks that rc holds no WATCH and no MULTI: a transaction on
// it commits although another connection changed k.
func assertClean(t *testing.T, rc redis.Conn, addr, k string) {
	t.Helper()
	if r, err := rc.Do("PING"); err != nil || r != "PONG" {
		t.Fatalf("PING on the pooled connection = %v, %v; want PONG (left in MULTI?)", r, err)
	}
	command(t, addr, "SET", k, "changed-elsewhere")
	_ = rc.Send("MULTI")
	_ = rc.Send("SET", k, "committed")
	r, err := rc.Do("EXEC")
	if err != nil || r == nil {
		t.Fatalf("EXEC on the pooled connection = %v, %v: a watch was left on it", r, err)
	}
}

func TestWatchLeavesNoWatch(t *testing.T) {
	backends(t, func(t *testing.T, addr string) {
		ctx := context.Background()
		k := key(t, addr)
		command(t, addr, "SET", k, "v")

		t.Run("redis.Pool", func(t *testing.T) {
			pool := newPool(t, addr)
			pool.MaxIdle = 1
			c := redigo.New(pool)
			if err := c.Watch(ctx, []string{k}, func(tx driver.Tx) error {
				_, _, err := tx.Get(ctx, k)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if a, i := pool.ActiveCount(), pool.IdleCount(); a != 1 || i != 1 {
				t.Fatalf("pool has %d active, %d idle connections; want 1, 1", a, i)
			}
			rc := pool.Get()
			defer rc.Close()
			assertClean(t, rc, addr, k)
		})

		// A Pool that does not UNWATCH on Close: the adapter must do it.
		t.Run("bare", func(t *testing.T) {
			pc := &singleConnPool{c: dial(t, addr)}
			c := redigo.New(pc)
			for _, fn := range []func(driver.Tx) error{
				func(tx driver.Tx) error { _, _, err := tx.Get(ctx, k); return err },
				func(driver.Tx) error { return errors.New("fn failed") },
				func(driver.Tx) error { panic("fn panicked") },
			} {
				func() {
					defer func() { _ = recover() }()
					_ = c.Watch(ctx, []string{k}, fn)
				}()
				assertClean(t, pc.c, addr, k)
			}
			// A Watch whose EXEC aborted leaves the connection clean too.
			err := c.Watch(ctx, []string{k}, func(tx driver.Tx) error {
				command(t, addr, "SET", k, "moved")
				_, err := tx.Exec(ctx, []string{"SET", k, "mine"})
				return err
			})
			if !errors.Is(err, driver.ErrTxAborted) {
				t.Fatalf("Watch: %v; want driver.ErrTxAborted", err)
			}
			assertClean(t, pc.c, addr, k)
		})
	})
}

func TestTxAfterWatch(t *testing.T) {
	addr := testredis.Addr(t)
	ctx := context.Background()
	c := redigo.New(newPool(t, addr))
	k := key(t, addr)
	var saved driver.Tx
	if err := c.Watch(ctx, []string{k}, func(tx driver.Tx) error { saved = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := saved.Get(ctx, k); err == nil {
		t.Error("Tx.Get after Watch returned succeeded")
	}
	if _, err := saved.Exec(ctx, []string{"DEL", k}); err == nil {
		t.Error("Tx.Exec after Watch returned succeeded")
	}
}

// clients returns the number of client connections srv has, less the one
// that asks.
func clients(t *testing.T, srv *testredis.Server) int {
	t.Helper()
	list, err := srv.Do("CLIENT", "LIST")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := list.(string)
	return strings.Count(s, "\n") - 1
}

func TestCloseUserPool(t *testing.T) {
	srv := testredis.Start(t)
	ctx := context.Background()
	pool := newPool(t, srv.Addr())
	c := redigo.New(pool)
	if _, err := c.SetNX(ctx, "k", "v", time.Second); err != nil {
		t.Fatal(err)
	}
	client, err := relock.New(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
	if _, _, err := c.Get(ctx, "k"); !errors.Is(err, redigo.ErrClosed) {
		t.Errorf("Get after Close: %v; want redigo.ErrClosed", err)
	}
	rc := pool.Get()
	defer rc.Close()
	if v, err := redis.String(rc.Do("GET", "k")); err != nil || v != "v" {
		t.Fatalf("user pool after Close: %q, %v; want it still open", v, err)
	}
	if n := clients(t, srv); n != 1 {
		t.Errorf("%d connections open; want the pool's 1", n)
	}
}

func TestCloseOwnedPool(t *testing.T) {
	srv := testredis.Start(t)
	c, err := redigo.Driver{}.Open(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if set, err := c.SetNX(ctx, "k", "v", time.Second); err != nil || !set {
		t.Fatal(set, err)
	}
	if n := clients(t, srv); n != 1 {
		t.Errorf("%d connections open before Close; want 1", n)
	}
	for range 2 {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := c.Get(ctx, "k"); !errors.Is(err, redigo.ErrClosed) {
		t.Errorf("Get after Close: %v; want redigo.ErrClosed", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for n := clients(t, srv); n != 0; n = clients(t, srv) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open after Close; want the owned pool closed", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNilPool(t *testing.T) {
	ctx := context.Background()
	for name, c := range map[string]*redigo.Conn{
		"nil":             redigo.New(nil),
		"typed nil":       redigo.New((*redis.Pool)(nil)),
		"typed nil other": redigo.New((*singleConnPool)(nil)),
	} {
		t.Run(name, func(t *testing.T) {
			_, err1 := c.SetNX(ctx, "k", "v", time.Second)
			_, _, err2 := c.Get(ctx, "k")
			_, err3 := c.Eval(ctx, "return 1", nil)
			_, err4 := c.EvalSha(ctx, "0000000000000000000000000000000000000000", nil)
			err5 := c.Watch(ctx, []string{"k"}, func(driver.Tx) error {
				t.Error("fn called")
				return nil
			})
			_, _, err6 := c.EvalShaWait(ctx, "0000000000000000000000000000000000000000", nil, nil, 1, time.Second)
			for i, err := range []error{err1, err2, err3, err4, err5, err6} {
				if !errors.Is(err, redigo.ErrNilPool) {
					t.Errorf("call %d: %v; want redigo.ErrNilPool", i+1, err)
				}
			}
			if err := c.Validate(); !errors.Is(err, redigo.ErrNilPool) {
				t.Errorf("Validate: %v; want redigo.ErrNilPool", err)
			}
			if client, err := relock.New(c); !errors.Is(err, relock.ErrInvalidArgument) || !errors.Is(err, redigo.ErrNilPool) {
				if client != nil {
					_ = client.Close()
				}
				t.Errorf("relock.New: %v; want an error matching relock.ErrInvalidArgument and redigo.ErrNilPool", err)
			}
			if err := c.Close(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestPoolWithoutDial checks that relock.New rejects a pool that can never
// dial, before anything is sent, and accepts a pool with either dial
// function.
func TestPoolWithoutDial(t *testing.T) {
	if _, err := relock.New(redigo.New(&redis.Pool{MaxIdle: 1})); !errors.Is(err, relock.ErrInvalidArgument) || !errors.Is(err, redigo.ErrNoDial) {
		t.Fatalf("relock.New over a pool without a dial function: %v; want relock.ErrInvalidArgument and redigo.ErrNoDial", err)
	}
	for name, p := range map[string]*redis.Pool{
		"Dial":        {Dial: func() (redis.Conn, error) { return nil, errors.New("unused") }},
		"DialContext": {DialContext: func(context.Context) (redis.Conn, error) { return nil, errors.New("unused") }},
	} {
		c, err := relock.New(redigo.New(p))
		if err != nil {
			t.Fatalf("relock.New over a pool with %s: %v", name, err)
		}
		_ = c.Close()
	}
}

func TestOpen(t *testing.T) {
	if !slices.Contains(relock.Drivers(), "redigo") {
		t.Fatalf("relock.Drivers() = %v; want redigo listed", relock.Drivers())
	}
	t.Run("bad DSN", func(t *testing.T) {
		for _, dsn := range []string{
			"",
			"127.0.0.1:6379",
			"http://127.0.0.1:6379",
			"redis://127.0.0.1:6379/notadb",
			"redis://%zz",
		} {
			if c, err := (redigo.Driver{}).Open(dsn); err == nil {
				_ = c.Close()
				t.Errorf("Driver.Open(%q) succeeded", dsn)
			}
			if c, err := relock.Open("redigo", dsn); err == nil {
				_ = c.Close()
				t.Errorf("relock.Open(redigo, %q) succeeded", dsn)
			}
		}
	})
	t.Run("redis", func(t *testing.T) {
		dsn := testredis.URL(t) + "/0"
		client, err := relock.Open("redigo", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		roundTrip(t, client, key(t, testredis.Addr(t)))
	})
}

// roundTrip obtains, checks, refreshes and releases a lock on k.
func roundTrip(t *testing.T, client *relock.Client, k string) {
	t.Helper()
	ctx := context.Background()
	lock, err := client.Obtain(ctx, k, 10*time.Second)
	if err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	if _, err := client.TryObtain(ctx, k, time.Second); !errors.Is(err, relock.ErrNotObtained) {
		t.Errorf("TryObtain of a held lock: %v; want ErrNotObtained", err)
	}
	if d, err := lock.TTL(ctx); err != nil || d <= 9*time.Second || d > 10*time.Second {
		t.Errorf("TTL = %v, %v; want about 10s", d, err)
	}
	if err := lock.Refresh(ctx, 20*time.Second); err != nil {
		t.Errorf("Refresh: %v", err)
	}
	if err := lock.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := lock.Release(ctx); err != nil {
		t.Errorf("second Release: %v; want nil (still released)", err)
	}
	if err := lock.Refresh(ctx, time.Second); !errors.Is(err, relock.ErrNotHeld) || !errors.Is(err, relock.ErrReleased) {
		t.Errorf("Refresh after Release: %v; want ErrNotHeld and ErrReleased", err)
	}
	again, err := client.TryObtain(ctx, k, time.Second)
	if err != nil {
		t.Fatalf("TryObtain after Release: %v", err)
	}
	if err := again.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestEndToEnd(t *testing.T) {
	backends(t, func(t *testing.T, addr string) {
		c := redigo.New(newPool(t, addr))
		for name, conn := range map[string]driver.Conn{"scripts": c, "watch": watchOnly{c}} {
			t.Run(name, func(t *testing.T) {
				client, err := relock.New(conn)
				if err != nil {
					t.Fatal(err)
				}
				roundTrip(t, client, key(t, addr))
			})
		}
	})
}

func TestConcurrent(t *testing.T) {
	backends(t, func(t *testing.T, addr string) {
		c := redigo.New(newPool(t, addr))
		k := key(t, addr)
		outer := t
		for name, conn := range map[string]driver.Conn{"scripts": c, "watch": watchOnly{c}} {
			t.Run(name, func(t *testing.T) {
				client, err := relock.New(conn, relock.WithRetry(relock.FixedRetry(time.Millisecond)))
				if err != nil {
					t.Fatal(err)
				}
				// Closed once both subtests are done: Close closes the
				// shared Conn too.
				outer.Cleanup(func() { _ = client.Close() })
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				var (
					wg      sync.WaitGroup
					mu      sync.Mutex
					holders int
				)
				for range 8 {
					wg.Go(func() {
						for range 10 {
							lock, err := client.Obtain(ctx, k, 5*time.Second)
							if err != nil {
								t.Error(err)
								return
							}
							mu.Lock()
							holders++
							if holders != 1 {
								t.Errorf("%d holders at once", holders)
							}
							mu.Unlock()
							mu.Lock()
							holders--
							mu.Unlock()
							if err := lock.Release(ctx); err != nil {
								t.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			})
		}
	})
}

func TestContext(t *testing.T) {
	backends(t, func(t *testing.T, addr string) {
		c := redigo.New(newPool(t, addr))
		k := key(t, addr)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		checkCtxErr(t, c, ctx, k, context.Canceled)
		client, err := relock.New(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Obtain(ctx, k, time.Second); !errors.Is(err, context.Canceled) {
			t.Errorf("Obtain: %v; want context.Canceled", err)
		}
	})

	// A server that accepts and never answers: the context must end the
	// call, and its error must show.
	t.Run("silent server", func(t *testing.T) {
		addr := silentServer(t)
		c := redigo.New(newPool(t, addr))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := c.SetNX(ctx, "k", "v", time.Second); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("SetNX: %v; want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("SetNX took %v to give up", d)
		}
		ctx, cancel = context.WithCancel(context.Background())
		time.AfterFunc(30*time.Millisecond, cancel)
		err := c.Watch(ctx, []string{"k"}, func(driver.Tx) error {
			t.Error("fn called although WATCH got no reply")
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Watch: %v; want context.Canceled", err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := c.Eval(ctx, "return 1", nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Eval: %v; want context.DeadlineExceeded", err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start = time.Now()
		if _, _, err := c.EvalWait(ctx, "return 1", nil, nil, 1, time.Second); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("EvalWait: %v; want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("EvalWait took %v to give up", d)
		}
	})
}

func checkCtxErr(t *testing.T, c *redigo.Conn, ctx context.Context, k string, want error) {
	t.Helper()
	_, err1 := c.SetNX(ctx, k, "v", time.Second)
	_, _, err2 := c.Get(ctx, k)
	_, err3 := c.Eval(ctx, "return 1", nil)
	_, err4 := c.EvalSha(ctx, "0000000000000000000000000000000000000000", nil)
	err5 := c.Watch(ctx, []string{k}, func(driver.Tx) error { return nil })
	_, _, err6 := c.EvalShaWait(ctx, "0000000000000000000000000000000000000000", []string{k}, nil, 1, time.Second)
	_, _, err7 := c.EvalWait(ctx, "return redis.call('SET', KEYS[1], 'v')", []string{k}, nil, 1, time.Second)
	for i, err := range []error{err1, err2, err3, err4, err5, err6, err7} {
		if !errors.Is(err, want) {
			t.Errorf("call %d: %v; want %v", i+1, err, want)
		}
	}
	// A Tx whose context ends inside fn.
	live := context.Background()
	err := c.Watch(live, []string{k}, func(tx driver.Tx) error {
		if _, _, err := tx.Get(ctx, k); !errors.Is(err, want) {
			t.Errorf("Tx.Get: %v; want %v", err, want)
		}
		_, err := tx.Exec(ctx, []string{"DEL", k})
		return err
	})
	if !errors.Is(err, want) {
		t.Errorf("Tx.Exec: %v; want %v", err, want)
	}
}

// silentServer listens on a loopback port, accepts connections and never
// replies. It stops when t ends.
func silentServer(t *testing.T) string {
	t.Helper()
	return fakeServer(t, nil)
}

// fakeServer listens on a loopback port and runs serve, if not nil, on each
// connection it accepts, in a goroutine of its own. When t ends it stops
// listening, closes the connections and waits for those goroutines.
func fakeServer(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			if serve != nil {
				wg.Go(func() { serve(c) })
			}
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestReplicaWaiter runs EvalShaWait and EvalWait against a private primary
// with one replica (on miniredis, whose WAIT answers 0, in internal/onmini).
func TestReplicaWaiter(t *testing.T) {
	t.Run("replica", func(t *testing.T) {
		rp := adaptertest.StartReplicaPair(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// One connection in the pool: a reply left unread would show in
		// the next call.
		pool := &redis.Pool{
			MaxIdle:   1,
			MaxActive: 1,
			Wait:      true,
			DialContext: func(ctx context.Context) (redis.Conn, error) {
				return redis.DialContext(ctx, "tcp", rp.Primary.Addr())
			},
		}
		defer pool.Close()
		c := redigo.New(pool)

		rp.CheckWaits(t, ctx, c)
		if v, acked, err := c.EvalWait(ctx, "return ARGV[1]", nil, []string{"again"}, 1, time.Second); v != "again" || acked != 1 || err != nil {
			t.Fatalf("EvalWait after WRONGTYPE = %v, %d, %v", v, acked, err)
		}
		rp.CheckAcks(t, ctx, c, "1.5", nil) // 0.8 s: the 300 ms WAIT and the 300 ms EvalShaWait outlasted it under load (issue 19 item 4)
	})
}
