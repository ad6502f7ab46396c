package goredis_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// TestMain fails the package when a test leaves a goroutine behind: every
// go-redis client the tests make must be closed. (The runs on miniredis are
// in internal/onmini, so that this package's tests import no miniredis.)
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// backend is the server the adapter tests run against.
type backend struct{ addr string }

// eachBackend runs f on the real server of testredis (skipped, or failed
// under RELOCK_REQUIRE_REDIS, when it is unreachable).
func eachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	t.Helper()
	f(t, backend{addr: testredis.Addr(t)})
}

// client returns a go-redis client of b, closed when the test ends.
func (b backend) client(t *testing.T, opts ...func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: b.addr}
	for _, f := range opts {
		f(o)
	}
	rdb := redis.NewClient(o)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// conn returns a Conn over a fresh client of b.
func (b backend) conn(t *testing.T, opts ...func(*redis.Options)) *goredis.Conn {
	t.Helper()
	return goredis.New(b.client(t, opts...))
}

// key returns a key no other test or run uses, deleted when the test ends.
func (b backend) key(t *testing.T) string {
	t.Helper()
	var r [8]byte
	_, _ = rand.Read(r[:])
	k := "relock-goredis-test:" + strings.ReplaceAll(t.Name(), "/", ":") + ":" + hex.EncodeToString(r[:])
	t.Cleanup(func() {
		rdb := redis.NewClient(&redis.Options{Addr: b.addr})
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = rdb.Del(ctx, k).Err()
	})
	return k
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newConn is the conformance suite's NewConn: a client the test built and
// closes itself, as users do, so the suite's Close of the Conn must leave it
// open.
func newConn(t *testing.T, b adaptertest.Backend) driver.Conn {
	rdb := redis.NewClient(&redis.Options{Addr: b.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return goredis.New(rdb)
}

func TestConformance(t *testing.T) { adaptertest.RunConformance(t, newConn) }

// recorder is a go-redis hook that records the arguments of every command
// the client sends, pipelines included.
type recorder struct {
	mu   sync.Mutex
	cmds [][]any
}

func (r *recorder) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *recorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.add(cmd)
		return next(ctx, cmd)
	}
}

func (r *recorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			r.add(c)
		}
		return next(ctx, cmds)
	}
}

func (r *recorder) add(cmd redis.Cmder) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cmds = append(r.cmds, slices.Clone(cmd.Args()))
}

func argsText(args ...any) string {
	s := make([]string, len(args))
	for i, a := range args {
		s[i] = fmt.Sprint(a)
	}
	return strings.ToUpper(strings.Join(s, " "))
}

func (r *recorder) last(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.cmds) - 1; i >= 0; i-- {
		c := r.cmds[i]
		if len(c) > 0 && strings.EqualFold(fmt.Sprint(c[0]), name) {
			return argsText(c...)
		}
	}
	return ""
}

func TestSetNXSendsSetNXPX(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := ctxT(t)
		rdb := b.client(t)
		rec := &recorder{}
		rdb.AddHook(rec)
		c := goredis.New(rdb)

		// 1500 ms is not whole seconds; 2000 ms is, and go-redis's own
		// SetNX would send EX 2 for it. Both must go out as PX.
		for _, ms := range []int64{1500, 2000, 1} {
			k := b.key(t)
			ttl := time.Duration(ms) * time.Millisecond
			set, err := c.SetNX(ctx, k, "tok", ttl)
			if err != nil || !set {
				t.Fatalf("SetNX(%v) on a new key = %v, %v; want true, nil", ttl, set, err)
			}
			want := argsText("set", k, "tok", "nx", "px", ms)
			if got := rec.last("set"); got != want {
				t.Fatalf("SetNX(%v) sent %q, want %q", ttl, got, want)
			}
			if ms == 1 {
				continue // gone by the time PTTL runs, on the real server
			}
			pttl, err := rdb.PTTL(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if lo, hi := time.Duration(ms-100)*time.Millisecond, ttl; pttl <= lo || pttl > hi {
				t.Fatalf("PTTL after SetNX(%v) = %v, want in (%v, %v]", ttl, pttl, lo, hi)
			}
			if v, err := rdb.Get(ctx, k).Result(); err != nil || v != "tok" {
				t.Fatalf("GET after SetNX = %q, %v", v, err)
			}

			// The key exists: not set, and not an error.
			set, err = c.SetNX(ctx, k, "other", time.Hour)
			if err != nil || set {
				t.Fatalf("SetNX on an existing key = %v, %v; want false, nil", set, err)
			}
			if v, _ := rdb.Get(ctx, k).Result(); v != "tok" {
				t.Fatalf("SetNX on an existing key overwrote it with %q", v)
			}
		}
	})
}

func TestGet(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := ctxT(t)
		c := b.conn(t)
		k := b.key(t)
		v, ok, err := c.Get(ctx, k)
		if v != "" || ok || err != nil {
			t.Fatalf("Get(missing) = %q, %v, %v; want \"\", false, nil", v, ok, err)
		}
		if _, err := c.SetNX(ctx, k, "x", time.Minute); err != nil {
			t.Fatal(err)
		}
		v, ok, err = c.Get(ctx, k)
		if v != "x" || !ok || err != nil {
			t.Fatalf("Get = %q, %v, %v; want \"x\", true, nil", v, ok, err)
		}
	})
}

type evalCase struct {
	name   string
	script string
	want   any
	resp3  bool // only RESP3 gives this answer (RESP2 differs, as Redis says)
	resp2  bool // only RESP2 gives this answer
}

var evalCases = []evalCase{
	{name: "nil", script: "return nil", want: nil},
	{name: "missing key", script: "return redis.call('GET', KEYS[1])", want: nil},
	{name: "false", script: "return false", want: nil},
	{name: "true", script: "return true", want: int64(1)},
	{name: "int", script: "return 42", want: int64(42)},
	{name: "negative int", script: "return -7", want: int64(-7)},
	{name: "string", script: "return 'hello'", want: "hello"},
	{name: "empty string", script: "return ''", want: ""},
	{name: "status table", script: "return {ok='OK'}", want: "OK"},
	{name: "status reply", script: "return redis.status_reply('PONG')", want: "PONG"},
	{name: "set status", script: "return redis.call('SET', KEYS[1], ARGV[1])", want: "OK"},
	{name: "empty array", script: "return {}", want: []any{}},
	{name: "array", script: "return {1, 'a', {ok='OK'}}", want: []any{int64(1), "a", "OK"}},
	{name: "array with false", script: "return {1, false, 'x'}", want: []any{int64(1), nil, "x"}},
	{name: "nested arrays", script: "return {KEYS[1], ARGV[1], {2, {'b', {}}}}", want: []any{"KEY", "arg", []any{int64(2), []any{"b", []any{}}}}},
	// RESP3-only types, normalised to what RESP2 gives.
	{name: "setresp false", script: "redis.setresp(3); return false", want: nil, resp3: true},
	{name: "setresp true", script: "redis.setresp(3); return true", want: int64(1)},
	{name: "setresp array", script: "redis.setresp(3); return {true, 5}", want: []any{int64(1), int64(5)}},
	// A double: Redis sends it to RESP2 as %.17g text, and
	// driver.ConvertReply gives a RESP3 double its shortest text.
	{name: "double", script: "return {double=0.1}", want: "0.10000000000000001", resp2: true},
	{name: "double", script: "return {double=0.1}", want: "0.1", resp3: true},
	{name: "whole double", script: "return {double=3}", want: "3"},
	{name: "map", script: "return {map={b=2, a=1}}", want: []any{"a", int64(1), "b", int64(2)}},
	{name: "set", script: "return {set={x=true}}", want: []any{"x"}},
	{name: "big number", script: "return {big_number='123456789012345678901234567890'}", want: "123456789012345678901234567890"},
	{name: "verbatim", script: "return {verbatim_string={format='txt', string='hi'}}", want: "hi"},
}

func TestEvalReplies(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		for _, proto := range []int{3, 2} {
			t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
				ctx := ctxT(t)
				rdb := b.client(t, func(o *redis.Options) { o.Protocol = proto })
				c := goredis.New(rdb)
				for _, tc := range evalCases {
					if (tc.resp2 && proto != 2) || (tc.resp3 && proto != 3) {
						continue
					}
					k := b.key(t)
					keys, args := []string{k}, []string{"arg"}
					want := tc.want
					if a, ok := want.([]any); ok && len(a) > 0 && a[0] == "KEY" {
						want = append([]any{k}, a[1:]...)
					}
					got, err := c.Eval(ctx, tc.script, keys, args...)
					if err != nil || !reflect.DeepEqual(got, want) {
						t.Errorf("%s: Eval = %#v, %v; want %#v", tc.name, got, err, want)
					}
					sha, err := rdb.ScriptLoad(ctx, tc.script).Result()
					if err != nil {
						t.Fatal(err)
					}
					got, err = c.EvalSha(ctx, sha, keys, args...)
					if err != nil || !reflect.DeepEqual(got, want) {
						t.Errorf("%s: EvalSha = %#v, %v; want %#v", tc.name, got, err, want)
					}
				}
			})
		}
	})
}

func TestEvalErrorReplies(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := ctxT(t)
		c := b.conn(t)

		// A plain error reply passes through with its text, matching
		// neither sentinel.
		_, err := c.Eval(ctx, "return redis.error_reply('MYERR boom')", nil)
		if err == nil || !strings.Contains(err.Error(), "MYERR boom") ||
			errors.Is(err, driver.ErrNoScript) || errors.Is(err, driver.ErrWrongType) {
			t.Fatalf("error_reply: err = %v", err)
		}
		var re redis.Error
		if !errors.As(err, &re) {
			t.Fatalf("error_reply: %v (%T) is not a redis.Error", err, err)
		}

		// An error reply nested in an array fails the whole call, and is
		// translated like any other.
		_, err = c.Eval(ctx, "return {1, redis.error_reply('WRONGTYPE nested')}", nil)
		if !errors.Is(err, driver.ErrWrongType) || !strings.Contains(err.Error(), "WRONGTYPE nested") {
			t.Fatalf("nested WRONGTYPE: err = %v", err)
		}
		_, err = c.Eval(ctx, "return {1, {2, redis.error_reply('MYERR deep')}}", nil)
		if err == nil || !strings.Contains(err.Error(), "MYERR deep") {
			t.Fatalf("nested error: err = %v", err)
		}

		// A script that does not compile.
		_, err = c.Eval(ctx, "return (", nil)
		if err == nil || errors.Is(err, driver.ErrNoScript) || errors.Is(err, driver.ErrWrongType) {
			t.Fatalf("syntax error: err = %v", err)
		}
	})
}

func TestNoScript(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := ctxT(t)
		rdb := b.client(t)
		c := goredis.New(rdb)
		k := b.key(t)

		_, err := c.EvalSha(ctx, "ffffffffffffffffffffffffffffffffffffffff", []string{k})
		if !errors.Is(err, driver.ErrNoScript) {
			t.Fatalf("EvalSha(unknown) err = %v, want ErrNoScript", err)
		}
		if !strings.HasPrefix(err.Error(), "NOSCRIPT") {
			t.Fatalf("EvalSha(unknown) err text %q lost the server's NOSCRIPT text", err)
		}
		if errors.Is(err, driver.ErrWrongType) {
			t.Fatalf("NOSCRIPT matches ErrWrongType too: %v", err)
		}
		var re redis.Error
		if !errors.As(err, &re) {
			t.Fatalf("NOSCRIPT error %T hides the go-redis error", err)
		}

		// A loaded script, then SCRIPT FLUSH: NOSCRIPT; Eval loads it again.
		const src = "return ARGV[1]"
		sha, err := rdb.ScriptLoad(ctx, src).Result()
		if err != nil {
			t.Fatal(err)
		}
		if v, err := c.EvalSha(ctx, sha, []string{k}, "a"); err != nil || v != "a" {
			t.Fatalf("EvalSha(loaded) = %v, %v", v, err)
		}
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.EvalSha(ctx, sha, []string{k}, "a"); !errors.Is(err, driver.ErrNoScript) {
			t.Fatalf("EvalSha after SCRIPT FLUSH: err = %v, want ErrNoScript", err)
		}
		if v, err := c.Eval(ctx, src, []string{k}, "b"); err != nil || v != "b" {
			t.Fatalf("Eval after SCRIPT FLUSH = %v, %v", v, err)
		}
		if v, err := c.EvalSha(ctx, sha, []string{k}, "c"); err != nil || v != "c" {
			t.Fatalf("EvalSha after Eval = %v, %v", v, err)
		}
	})
}

func TestWrongType(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := ctxT(t)
		rdb := b.client(t)
		c := goredis.New(rdb)
		k := b.key(t)
		if err := rdb.HSet(ctx, k, "f", "v").Err(); err != nil {
			t.Fatal(err)
		}
		check := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, driver.ErrWrongType) {
				t.Errorf("%s: err = %v, want ErrWrongType", what, err)
				return
			}
			if !strings.Contains(err.Error(), "WRONGTYPE") {
				t.Errorf("%s: err text %q lost the server's text", what, err)
			}
			if errors.Is(err, driver.ErrNoScript) {
				t.Errorf("%s: WRONGTYPE matches ErrNoScript too", what)
			}
			var re redis.Error
			if !errors.As(err, &re) {
				t.Errorf("%s: %T hides the go-redis error", what, err)
			}
			t.Logf("%s: %v", what, err)
		}

		_, _, err := c.Get(ctx, k)
		check("Get", err)

		// Inside a script: Redis 7 keeps the WRONGTYPE code, older Redis
		// wraps it in an ERR reply.
		const src = "return redis.call('GET', KEYS[1])"
		_, err = c.Eval(ctx, src, []string{k})
		check("Eval", err)
		sha, err := rdb.ScriptLoad(ctx, src).Result()
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.EvalSha(ctx, sha, []string{k})
		check("EvalSha", err)

		// Through redis.pcall the error is the script's reply.
		_, err = c.Eval(ctx, "return redis.pcall('GET', KEYS[1])", []string{k})
		check("Eval pcall", err)

		err = c.Watch(ctx, []string{k}, func(tx driver.Tx) error {
			_, _, err := tx.Get(ctx, k)
			check("Tx.Get", err)
			_, err = tx.Exec(ctx, []string{"GET", k})
			check("Tx.Exec", err)
			return err
		})
		check("Watch", err)

		// SET NX on a hash is not an error: the key exists.
		if set, err := c.SetNX(ctx, k, "v", time.Second); set || err != nil {
			t.Errorf("SetNX on a hash = %v, %v; want false, nil", set, err)
		}
	})
}

func TestWatchExec(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := ctxT(t)
		c := b.conn(t)
		k, other := b.key(t), b.key(t)
		if _, err := c.SetNX(ctx, k, "tok", time.Minute); err != nil {
			t.Fatal(err)
		}
		var replies []any
		err := c.Watch(ctx, []string{k}, func(tx driver.Tx) error {
			v, ok, err := tx.Get(ctx, k)
			if err != nil || !ok || v != "tok" {
				return fmt.Errorf("Tx.Get = %q, %v, %v", v, ok, err)
			}
			if v, ok, err := tx.Get(ctx, other); v != "" || ok || err != nil {
				return fmt.Errorf("Tx.Get(missing) = %q, %v, %v", v, ok, err)
			}
			replies, err = tx.Exec(ctx,
				[]string{"GET", other},
				[]string{"PEXPIRE", k, "5000"},
				[]string{"DEL", k},
				[]string{"SET", other, "v"},
				[]string{"PTTL", other},
				[]string{"GET", other},
				[]string{"SET", other, "w", "NX"},
			)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []any{nil, int64(1), int64(1), "OK", int64(-1), "v", nil}
		if !reflect.DeepEqual(replies, want) {
			t.Fatalf("Exec replies = %#v, want %#v", replies, want)
		}

		// A command the server rejects while queueing (wrong arity): the
		// server answers EXEC with EXECABORT and nothing runs.
		err = c.Watch(ctx, []string{k}, func(tx driver.Tx) error {
			r, err := tx.Exec(ctx, []string{"SET", other, "never"}, []string{"GET"})
			if r != nil {
				t.Errorf("Exec with a rejected command returned replies %#v", r)
			}
			return err
		})
		if err == nil || errors.Is(err, driver.ErrTxAborted) {
			t.Fatalf("Exec with a rejected command: err = %v", err)
		}
		t.Logf("Exec with a rejected command: %v", err)
		if v, _, _ := c.Get(ctx, other); v != "v" {
			t.Fatalf("a transaction aborted by EXECABORT ran: %q", v)
		}

		// No commands: refused, not sent.
		err = c.Watch(ctx, []string{k}, func(tx driver.Tx) error {
			_, err := tx.Exec(ctx)
			return err
		})
		if err == nil {
			t.Fatal("Exec() with no commands: no error")
		}
	})
}

func TestWatchTxAborted(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := ctxT(t)
		c := b.conn(t)
		intruder := b.client(t)
		k := b.key(t)
		if _, err := c.SetNX(ctx, k, "mine", time.Minute); err != nil {
			t.Fatal(err)
		}
		var execErr error
		err := c.Watch(ctx, []string{k}, func(tx driver.Tx) error {
			if v, _, err := tx.Get(ctx, k); err != nil || v != "mine" {
				return fmt.Errorf("Tx.Get = %q, %v", v, err)
			}
			// Another client changes the watched key before EXEC.
			if err := intruder.Set(ctx, k, "theirs", time.Minute).Err(); err != nil {
				return err
			}
			var r []any
			r, execErr = tx.Exec(ctx, []string{"DEL", k})
			if r != nil {
				t.Errorf("aborted Exec returned replies %#v", r)
			}
			return execErr
		})
		if !errors.Is(execErr, driver.ErrTxAborted) {
			t.Fatalf("Exec after the key changed: err = %v, want ErrTxAborted", execErr)
		}
		if !errors.Is(err, driver.ErrTxAborted) {
			t.Fatalf("Watch returned %v, want fn's ErrTxAborted", err)
		}
		if !errors.Is(err, redis.TxFailedErr) {
			t.Errorf("ErrTxAborted hides redis.TxFailedErr: %v", err)
		}
		if v, _ := intruder.Get(ctx, k).Result(); v != "theirs" {
			t.Fatalf("aborted DEL ran anyway: key = %q", v)
		}
	})
}

// TestWatchLeavesNoWatch checks that a Watch whose fn returns without EXEC
// leaves the pooled connection unwatched: the next MULTI/EXEC on that same
// connection must not abort when the once-watched key changes.
func TestWatchLeavesNoWatch(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		cases := []struct {
			name string
			fn   func(ctx context.Context, cancel context.CancelFunc, tx driver.Tx, k string) error
			want error
			same bool // the connection must be the same one afterwards
		}{
			{"returns nil", func(ctx context.Context, _ context.CancelFunc, tx driver.Tx, k string) error {
				_, _, err := tx.Get(ctx, k)
				return err
			}, nil, true},
			{"returns error", func(ctx context.Context, _ context.CancelFunc, tx driver.Tx, k string) error {
				_, _, _ = tx.Get(ctx, k)
				return errBoom
			}, errBoom, true},
			{"context cancelled", func(ctx context.Context, cancel context.CancelFunc, tx driver.Tx, k string) error {
				_, _, _ = tx.Get(ctx, k)
				cancel()
				return ctx.Err()
			}, context.Canceled, false},
			{"Exec after cancel", func(ctx context.Context, cancel context.CancelFunc, tx driver.Tx, k string) error {
				cancel()
				_, err := tx.Exec(ctx, []string{"GET", k})
				return err
			}, context.Canceled, false},
		}
		for _, ctxTimeouts := range []bool{false, true} {
			for _, tc := range cases {
				t.Run(fmt.Sprintf("%s/ContextTimeoutEnabled=%v", tc.name, ctxTimeouts), func(t *testing.T) {
					bg := ctxT(t)
					rdb := b.client(t, func(o *redis.Options) {
						o.PoolSize = 1
						o.ContextTimeoutEnabled = ctxTimeouts
					})
					c := goredis.New(rdb)
					intruder := b.client(t)
					k, k2 := b.key(t), b.key(t)
					if err := rdb.Do(bg, "client", "setname", "relock-pinned").Err(); err != nil {
						t.Fatal(err)
					}

					ctx, cancel := context.WithCancel(bg)
					defer cancel()
					err := c.Watch(ctx, []string{k}, func(tx driver.Tx) error {
						return tc.fn(ctx, cancel, tx, k)
					})
					if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
						t.Fatalf("Watch = %v, want %v", err, tc.want)
					}

					if err := intruder.Set(bg, k, "changed", time.Minute).Err(); err != nil {
						t.Fatal(err)
					}
					name, err := rdb.Do(bg, "client", "getname").Text()
					if tc.same && (err != nil || name != "relock-pinned") {
						t.Fatalf("the pooled connection was replaced (CLIENT GETNAME = %q, %v)", name, err)
					}
					t.Logf("connection kept: %v", name == "relock-pinned")
					if err := execOnPool(bg, c, k2); err != nil {
						t.Fatalf("MULTI/EXEC on the pooled connection after Watch: %v (a WATCH was left on it)", err)
					}
				})
			}
		}
	})
}

var errBoom = errors.New("boom")

// execOnPool runs MULTI SET k2 EXEC on the single connection of c's pool
// (pinned by a Watch of k2 alone). It fails with ErrTxAborted when an
// earlier WATCH of a key that changed since was left on that connection.
// (Client.TxPipelined would not do: go-redis runs pipelines on a separate
// pipeline pool.)
func execOnPool(ctx context.Context, c *goredis.Conn, k2 string) error {
	return c.Watch(ctx, []string{k2}, func(tx driver.Tx) error {
		_, err := tx.Exec(ctx, []string{"SET", k2, "x"})
		return err
	})
}

// TestLeakedWatchIsDetected shows that execOnPool, the probe of
// TestWatchLeavesNoWatch, finds a WATCH left on a pooled connection.
func TestLeakedWatchIsDetected(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := ctxT(t)
		rdb := b.client(t, func(o *redis.Options) { o.PoolSize = 1 })
		k, k2 := b.key(t), b.key(t)
		if err := rdb.Do(ctx, "watch", k).Err(); err != nil { // leaked on purpose
			t.Fatal(err)
		}
		if err := b.client(t).Set(ctx, k, "changed", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if err := execOnPool(ctx, goredis.New(rdb), k2); !errors.Is(err, driver.ErrTxAborted) {
			t.Fatalf("probe after a leaked WATCH = %v, want ErrTxAborted", err)
		}
	})
}

func TestContextErrors(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		c := b.conn(t)
		k := b.key(t)
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel2()

		for _, tc := range []struct {
			ctx  context.Context
			want error
		}{{cancelled, context.Canceled}, {expired, context.DeadlineExceeded}} {
			calls := map[string]error{}
			_, calls["SetNX"] = c.SetNX(tc.ctx, k, "v", time.Second)
			_, _, calls["Get"] = c.Get(tc.ctx, k)
			_, calls["Eval"] = c.Eval(tc.ctx, "return 1", []string{k})
			_, calls["EvalSha"] = c.EvalSha(tc.ctx, "ffffffffffffffffffffffffffffffffffffffff", []string{k})
			calls["Watch"] = c.Watch(tc.ctx, []string{k}, func(driver.Tx) error { return nil })
			_, _, calls["EvalShaWait"] = c.EvalShaWait(tc.ctx, "ffffffffffffffffffffffffffffffffffffffff", []string{k}, nil, 1, time.Second)
			_, _, calls["EvalWait"] = c.EvalWait(tc.ctx, "return redis.call('SET', KEYS[1], 'v')", []string{k}, nil, 1, time.Second)
			for name, err := range calls {
				if !errors.Is(err, tc.want) {
					t.Errorf("%s with a done context: err = %v, want %v", name, err, tc.want)
				}
			}
		}
		// Nothing was written.
		if _, ok, err := c.Get(context.Background(), k); ok || err != nil {
			t.Fatalf("a call with a done context wrote the key (ok=%v, err=%v)", ok, err)
		}
	})
}

func TestCloseLeavesUserClientOpen(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := ctxT(t)
		rdb := b.client(t)
		c := goredis.New(rdb)
		for i := range 2 {
			if err := c.Close(); err != nil {
				t.Fatalf("Close #%d = %v", i+1, err)
			}
		}
		if err := rdb.Ping(ctx).Err(); err != nil {
			t.Fatalf("the user's client no longer works after Conn.Close: %v", err)
		}

		// Same through relock.Client.Close.
		locker, err := relock.New(goredis.New(rdb))
		if err != nil {
			t.Fatal(err)
		}
		if err := locker.Close(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Ping(ctx).Err(); err != nil {
			t.Fatalf("the user's client no longer works after relock.Client.Close: %v", err)
		}
	})
}

func TestOpenOwnsClient(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := ctxT(t)
		c, err := goredis.Driver{}.Open("redis://" + b.addr + "/0")
		if err != nil {
			t.Fatal(err)
		}
		k := b.key(t)
		if set, err := c.SetNX(ctx, k, "v", time.Minute); !set || err != nil {
			t.Fatalf("SetNX = %v, %v", set, err)
		}
		if _, ok := c.(driver.Scripter); !ok {
			t.Fatal("Open's Conn is no driver.Scripter")
		}
		if _, ok := c.(driver.Watcher); !ok {
			t.Fatal("Open's Conn is no driver.Watcher")
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
		if _, _, err := c.Get(ctx, k); !errors.Is(err, goredis.ErrClosed) {
			t.Fatalf("Get after Close: err = %v, want goredis.ErrClosed", err)
		}
		if err := goredis.Client(c.(*goredis.Conn)).Ping(ctx).Err(); !errors.Is(err, redis.ErrClosed) {
			t.Fatalf("Ping on the client Open made, after Close: err = %v, want redis.ErrClosed", err)
		}
	})
}

func TestRelockOpen(t *testing.T) {
	if !slices.Contains(relock.Drivers(), "goredis") {
		t.Fatalf("relock.Drivers() = %v, no goredis", relock.Drivers())
	}

	for _, dsn := range []string{
		"",
		"127.0.0.1:6379",
		"http://127.0.0.1:6379",
		"redis://127.0.0.1:6379/notadb",
		"redis://127.0.0.1:6379/0?dial_timeout=soon",
		"redis://[::1",
	} {
		if _, err := (goredis.Driver{}).Open(dsn); err == nil {
			t.Errorf("Driver.Open(%q): no error", dsn)
		}
		if l, err := relock.Open("goredis", dsn); err == nil {
			_ = l.Close()
			t.Errorf("relock.Open(goredis, %q): no error", dsn)
		}
	}

	// A rediss:// URL parses (TLS) without contacting anyone.
	c, err := goredis.Driver{}.Open("rediss://user:pass@127.0.0.1:1/3?protocol=2")
	if err != nil {
		t.Fatalf("Driver.Open(rediss://...) = %v", err)
	}
	_ = c.Close()

	eachBackend(t, func(t *testing.T, b backend) {
		ctx := ctxT(t)
		dsn := "redis://" + b.addr + "/0"
		if b.addr == "127.0.0.1:6379" {
			dsn = "redis://127.0.0.1:6379/0" // the URL users write
		}
		locker, err := relock.Open("goredis", dsn)
		if err != nil {
			t.Fatalf("relock.Open(goredis, %q) = %v", dsn, err)
		}
		k := b.key(t)
		lock, err := locker.Obtain(ctx, k, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := lock.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := locker.Close(); err != nil {
			t.Fatal(err)
		}
		// goleak in TestMain shows the client's goroutines ended.
	})
}

func TestEndToEnd(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := ctxT(t)
		rdb := b.client(t)
		locker, err := relock.New(goredis.New(rdb))
		if err != nil {
			t.Fatal(err)
		}
		defer locker.Close()
		k := b.key(t)

		lock, err := locker.Obtain(ctx, k, 1500*time.Millisecond)
		if err != nil {
			t.Fatalf("Obtain = %v", err)
		}
		if v, err := rdb.Get(ctx, k).Result(); err != nil || v != lock.Token() {
			t.Fatalf("key holds %q (%v), want the token %q", v, err, lock.Token())
		}
		if pttl, err := rdb.PTTL(ctx, k).Result(); err != nil || pttl <= 1400*time.Millisecond || pttl > 1500*time.Millisecond {
			t.Fatalf("PTTL = %v, %v; want in (1.4s, 1.5s]", pttl, err)
		}
		if _, err := locker.TryObtain(ctx, k, time.Second); !errors.Is(err, relock.ErrNotObtained) {
			t.Fatalf("TryObtain of a held lock = %v, want ErrNotObtained", err)
		}
		if err := lock.Refresh(ctx, time.Minute); err != nil {
			t.Fatalf("Refresh = %v", err)
		}
		if ttl, err := lock.TTL(ctx); err != nil || ttl <= 59*time.Second || ttl > time.Minute {
			t.Fatalf("TTL = %v, %v; want about a minute", ttl, err)
		}
		if err := lock.Release(ctx); err != nil {
			t.Fatalf("Release = %v", err)
		}
		if n, err := rdb.Exists(ctx, k).Result(); err != nil || n != 0 {
			t.Fatalf("key still exists after Release (%d, %v)", n, err)
		}
		if err := lock.Release(ctx); err != nil {
			t.Fatalf("second Release = %v, want nil (still released)", err)
		}
		if err := lock.Refresh(ctx, time.Second); !errors.Is(err, relock.ErrNotHeld) || !errors.Is(err, relock.ErrReleased) {
			t.Fatalf("Refresh after Release = %v, want ErrNotHeld and ErrReleased", err)
		}
		again, err := locker.TryObtain(ctx, k, time.Second)
		if err != nil {
			t.Fatalf("TryObtain after Release = %v", err)
		}
		if err := again.Release(ctx); err != nil {
			t.Fatal(err)
		}

		// A lock on a hash fails at once with ErrWrongType.
		if err := rdb.HSet(ctx, k, "f", "v").Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := locker.TryObtain(ctx, k, time.Second); !errors.Is(err, relock.ErrWrongType) && !errors.Is(err, driver.ErrWrongType) {
			t.Fatalf("Obtain on a hash = %v, want ErrWrongType", err)
		}
	})
}

func TestNewNilFailsWithoutPanic(t *testing.T) {
	ctx := context.Background()
	for name, c := range map[string]*goredis.Conn{
		"nil":               goredis.New(nil),
		"typed nil":         goredis.New((*redis.Client)(nil)),
		"typed nil cluster": goredis.New((*redis.ClusterClient)(nil)),
		"typed nil ring":    goredis.New((*redis.Ring)(nil)),
	} {
		if err := c.Validate(); !errors.Is(err, goredis.ErrNilClient) {
			t.Errorf("%s: Validate = %v, want ErrNilClient", name, err)
		}
		if l, err := relock.New(c); !errors.Is(err, relock.ErrInvalidArgument) || !errors.Is(err, goredis.ErrNilClient) {
			if l != nil {
				_ = l.Close()
			}
			t.Errorf("%s: relock.New = %v, want an error matching relock.ErrInvalidArgument and goredis.ErrNilClient", name, err)
		}
		if _, err := c.SetNX(ctx, "k", "v", time.Second); !errors.Is(err, goredis.ErrNilClient) {
			t.Errorf("%s: SetNX = %v, want ErrNilClient", name, err)
		}
		if _, _, err := c.Get(ctx, "k"); !errors.Is(err, goredis.ErrNilClient) {
			t.Errorf("%s: Get = %v, want ErrNilClient", name, err)
		}
		if _, err := c.EvalSha(ctx, "x", nil); !errors.Is(err, goredis.ErrNilClient) {
			t.Errorf("%s: EvalSha = %v, want ErrNilClient", name, err)
		}
		if err := c.Watch(ctx, []string{"k"}, func(driver.Tx) error { return nil }); !errors.Is(err, goredis.ErrNilClient) {
			t.Errorf("%s: Watch = %v, want ErrNilClient", name, err)
		}
		if _, _, err := c.EvalShaWait(ctx, "x", nil, nil, 1, time.Second); !errors.Is(err, goredis.ErrNilClient) {
			t.Errorf("%s: EvalShaWait = %v, want ErrNilClient", name, err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("%s: Close = %v", name, err)
		}
	}
}

func TestClosedConnFails(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: testredis.Addr(t)})
	defer rdb.Close()
	c := goredis.New(rdb)
	_ = c.Close()
	if _, err := c.SetNX(context.Background(), "k", "v", time.Second); !errors.Is(err, goredis.ErrClosed) {
		t.Fatalf("SetNX after Close = %v, want ErrClosed", err)
	}
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("the user's client was closed: %v", err)
	}
}

// TestReplicaWaiter runs EvalShaWait and EvalWait against a private primary
// with one replica. (internal/onmini runs them on miniredis, whose WAIT
// answers 0.)
func TestReplicaWaiter(t *testing.T) {
	t.Run("replica", func(t *testing.T) {
		rp := adaptertest.StartReplicaPair(t)
		ctx := ctxT(t)
		// One connection in the pool: a reply left unread would show in
		// the next call.
		rdb := redis.NewClient(&redis.Options{Addr: rp.Primary.Addr(), PoolSize: 1})
		defer rdb.Close()
		pipelined := &recorder{}
		rdb.AddHook(pipelined)
		c := goredis.New(rdb)
		// A client whose ReadTimeout is below twice the WAIT timeouts
		// given to it: the script and WAIT go out one after the other.
		slow := redis.NewClient(&redis.Options{Addr: rp.Primary.Addr(), PoolSize: 1, ReadTimeout: 100 * time.Millisecond})
		defer slow.Close()
		rec := &recorder{}
		slow.AddHook(rec)
		cs := goredis.New(slow)

		rp.CheckWaits(t, ctx, c)
		// The client's hooks see the pipeline. (Not so on a clone from
		// Client.WithTimeout, which go-redis v9.23 builds without them.)
		if got := pipelined.last("wait"); !strings.HasPrefix(got, "WAIT ") {
			t.Fatalf("the client's hook saw no WAIT (last: %q)", got)
		}

		// The slow client, one command after the other: the same answers.
		if v, acked, err := cs.EvalShaWait(ctx, adaptertest.SetScriptSHA, []string{"k4s"}, []string{"v4"}, 1, time.Second); v != "OK" || acked != 1 || err != nil {
			t.Fatalf("EvalShaWait on the slow client = %v, %d, %v; want OK, 1, nil", v, acked, err)
		}
		rp.OnReplica(t, "k4s", "v4")
		if got := rp.NextWait(t, "evalsha", "k4s"); !slices.Equal(got, []string{"1", "1000"}) {
			t.Errorf("sent WAIT %q, want WAIT 1 1000", got)
		}
		if got := rec.last("wait"); got != "WAIT 1 1000" {
			t.Errorf("the slow client's hook saw %q, want WAIT 1 1000", got)
		}
		if _, _, err := cs.EvalShaWait(ctx, "ffffffffffffffffffffffffffffffffffffffff", []string{"k4u"}, nil, 1, time.Second); !errors.Is(err, driver.ErrNoScript) {
			t.Fatalf("EvalShaWait(unknown sha) on the slow client: err = %v, want ErrNoScript", err)
		}
		if v, acked, err := cs.EvalWait(ctx, "return ARGV[1]", nil, []string{"next"}, 1, time.Second); v != "next" || acked != 1 || err != nil {
			t.Fatalf("EvalWait on the slow client after NOSCRIPT = %v, %d, %v", v, acked, err)
		}

		// While the replica sleeps, the script's WAIT gets 0 through either
		// client; the slow one waits longer than its ReadTimeout (100 ms)
		// without failing.
		rp.CheckAcks(t, ctx, c, "1.5", func() {
			for name, c := range map[string]*goredis.Conn{"pipelined": c, "slow": cs} {
				k := "k5-" + name
				adaptertest.CheckSleepingWait(t, ctx, c, name, k)
				if got := rp.NextWait(t, "evalsha", k); !slices.Equal(got, []string{"1", "300"}) {
					t.Errorf("%s: sent WAIT %q, want WAIT 1 300", name, got)
				}
			}
		})
	})
}

// TestReplicaWaiterUnsupported: a ring client would send WAIT to a shard of
// its choosing, and a cluster client has no node for a script without keys,
// so they fail before sending anything.
func TestReplicaWaiterUnsupported(t *testing.T) {
	b := backend{addr: testredis.Addr(t)}
	ctx := ctxT(t)
	k := b.key(t)
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{b.addr}})
	defer cluster.Close()
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": b.addr}})
	defer ring.Close()
	for _, tc := range []struct {
		name string
		rdb  redis.UniversalClient
		keys []string
	}{
		{"ring", ring, []string{k}},
		{"cluster without keys", cluster, nil},
	} {
		c := goredis.New(tc.rdb)
		_, _, err := c.EvalShaWait(ctx, "ffffffffffffffffffffffffffffffffffffffff", tc.keys, nil, 1, time.Second)
		if !errors.Is(err, errors.ErrUnsupported) || !errors.Is(err, relock.ErrUnsupported) {
			t.Errorf("%s: EvalShaWait err = %v, want errors.ErrUnsupported and relock.ErrUnsupported", tc.name, err)
		}
		if _, _, err := c.EvalWait(ctx, "return redis.call('SET', '"+k+"', 'v')", tc.keys, nil, 1, time.Second); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s: EvalWait err = %v, want errors.ErrUnsupported", tc.name, err)
		}
		t.Logf("%s: %v", tc.name, err)
	}
	if n, err := b.client(t).Exists(ctx, k).Result(); n != 0 || err != nil {
		t.Fatalf("the script ran (EXISTS = %d, %v)", n, err)
	}
}
