package relock_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// userConns returns, for each adapter, a constructor of a connection to
// addr as the ACL user user (password "pw").
func userConns(addr, user string) map[string]func(t *testing.T) driver.Conn {
	return connsAs(addr, false, user)
}

// scriptsOnly hides a connection's WATCH, so that no fallback exists when
// scripting is refused.
type scriptsOnly struct {
	driver.Conn
	s driver.Scripter
}

func (c scriptsOnly) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	return c.s.Eval(ctx, script, keys, args...)
}

func (c scriptsOnly) EvalSha(ctx context.Context, sha string, keys []string, args ...string) (any, error) {
	return c.s.EvalSha(ctx, sha, keys, args...)
}

// exercise runs the lock API as a user would and fails t on any error:
// obtain, contended obtain (another Client waits and gets the lock on
// release: handed over, when queued says that the waiter queues, which
// exercise then waits for), refresh, TTL, Inspect, release, Do.
func exercise(t *testing.T, a, b *relock.Client, key string, queued bool, opts ...relock.Option) {
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	l, err := a.Obtain(ctx, key, 2*time.Second, opts...)
	if err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	got := make(chan error, 1)
	go func() {
		l2, err := b.Obtain(ctx, key, 2*time.Second, opts...)
		if err == nil {
			var d time.Duration
			if d, err = l2.TTL(ctx); err == nil && d <= 0 {
				err = fmt.Errorf("the waiter's lock has TTL %v", d)
			}
		}
		if err == nil {
			err = l2.Release(ctx)
		}
		got <- err
	}()
	if queued {
		waitWaiters(t, a, key, 1)
	}
	if err := l.Refresh(ctx, 3*time.Second); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if d, err := l.TTL(ctx); err != nil || d <= 0 {
		t.Fatalf("TTL = %v, %v", d, err)
	}
	if info, err := a.Inspect(ctx, key); err != nil || !info.Held || info.Token != l.Token() {
		t.Fatalf("Inspect = %+v, %v", info, err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := <-got; err != nil {
		t.Fatalf("the waiting Client: %v", err)
	}
	ran := false
	if err := a.Do(ctx, key, time.Second, func(context.Context) error { ran = true; return nil }, opts...); err != nil || !ran {
		t.Fatalf("Do = %v (ran %v)", err, ran)
	}
}

// wantNoKeys fails t if any key matching pattern is left on srv.
func wantNoKeys(t *testing.T, srv *testredis.Server, pattern string) {
	t.Helper()
	r, err := srv.Do("KEYS", pattern)
	if err != nil {
		t.Fatal(err)
	}
	if keys := r.([]any); len(keys) > 0 {
		t.Fatalf("keys left behind: %v", keys)
	}
}

// A Redis user without @scripting gets a working lock through the WATCH
// path; a driver without WATCH fails Obtain with ErrNoPermission at once,
// and leaves no key behind: never a lock that cannot be released.
func TestNoScriptingPermission(t *testing.T) {
	srv := testredis.Start(t)
	if _, err := srv.Do("ACL", "SETUSER", "noscripts", "on", ">pw", "~*", "&*", "+@all", "-@scripting"); err != nil {
		t.Fatal(err)
	}
	for name, newConn := range userConns(srv.Addr(), "noscripts") {
		t.Run(name, func(t *testing.T) {
			a, b := newClient(t, newConn(t)), newClient(t, newConn(t))
			exercise(t, a, b, "noscripts-"+name, false)
			exercise(t, a, b, "noscripts-fenced-"+name, false, relock.WithFencing())
			// WAIT needs the scripts' connection: no replicas counted.
			l, err := a.Obtain(ctxT(t, 5*time.Second), "noscripts-"+name+"-replicas", time.Second, relock.WithReplicas(1, 20*time.Millisecond))
			if !errors.Is(err, relock.ErrNoPermission) || l != nil {
				t.Fatalf("Obtain WithReplicas without scripting = %v, %v; want ErrNoPermission", l, err)
			}
			wantNoKeys(t, srv, "noscripts-"+name+"*")

			conn := newConn(t)
			s := newClient(t, scriptsOnly{conn, conn.(driver.Scripter)})
			ctx := ctxT(t, 5*time.Second)
			k := "noscripts-nowatch-" + name
			l, err = s.Obtain(ctx, k, 10*time.Second)
			if !errors.Is(err, relock.ErrNoPermission) || l != nil {
				t.Fatalf("Obtain without scripting or WATCH = %v, %v; want ErrNoPermission", l, err)
			}
			wantNoKeys(t, srv, k)
		})
	}
}

// A Redis user whose key pattern covers the lock key but not its
// companions gets a working lock (waiters poll); fencing, which needs a
// companion, fails with ErrNoPermission and leaves nothing behind.
func TestCompanionKeysRefused(t *testing.T) {
	srv := testredis.Start(t)
	if _, err := srv.Do("ACL", "SETUSER", "lockonly", "on", ">pw", "~job*", "&*", "+@all"); err != nil {
		t.Fatal(err)
	}
	for name, newConn := range userConns(srv.Addr(), "lockonly") {
		t.Run(name, func(t *testing.T) {
			a, b := newClient(t, newConn(t)), newClient(t, newConn(t))
			k := "job-" + name
			exercise(t, a, b, k, false)
			ctx := ctxT(t, 5*time.Second)
			fk := "job-fenced-" + name
			l, err := newClient(t, newConn(t)).Obtain(ctx, fk, 10*time.Second, relock.WithFencing())
			if !errors.Is(err, relock.ErrNoPermission) || l != nil {
				t.Fatalf("fenced Obtain without access to the counter = %v, %v; want ErrNoPermission", l, err)
			}
			wantNoKeys(t, srv, "job-*"+name+"*")

			// A key outside the pattern: refused at once, nothing written.
			l, err = a.Obtain(ctx, "other-"+name, 10*time.Second)
			if !errors.Is(err, relock.ErrNoPermission) || l != nil {
				t.Fatalf("Obtain of a refused key = %v, %v; want ErrNoPermission", l, err)
			}
		})
	}
}

// TestPermissionsDoc creates the ACL users of docs/permissions.md, as its
// "ACL SETUSER" lines say, and runs the API through each adapter as them,
// with the prefix their key patterns allow: the server must refuse
// nothing but what the document says it may.
func TestPermissionsDoc(t *testing.T) {
	md, err := os.ReadFile(filepath.Join("..", "..", "docs", "permissions.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The refusals each user's Client meets by design.
	allowed := map[string][]string{
		"app":       {"cluster|slots"},
		"app-watch": {"cluster|slots", "evalsha", "eval", "subscribe", "unsubscribe"},
	}
	var lines []string
	for _, l := range strings.Split(string(md), "\n") {
		if strings.HasPrefix(l, "ACL SETUSER ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != len(allowed) {
		t.Fatalf("docs/permissions.md has %d ACL SETUSER lines; want %d (users %v)", len(lines), len(allowed), allowed)
	}
	srv := testredis.Start(t)
	for _, line := range lines {
		args := strings.Fields(line)[2:]
		user := args[0]
		if _, ok := allowed[user]; !ok {
			t.Fatalf("docs/permissions.md: user %q: the test knows only %v", user, allowed)
		}
		for i, a := range args {
			if strings.HasPrefix(a, ">") {
				args[i] = ">pw" // userConns' password
			}
		}
		if _, err := srv.Do(append([]string{"ACL", "SETUSER"}, args...)...); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		for name, newConn := range userConns(srv.Addr(), user) {
			t.Run(user+"/"+name, func(t *testing.T) {
				prefix := user + ":"
				a := newClient(t, newConn(t), relock.WithKeyPrefix(prefix))
				b := newClient(t, newConn(t), relock.WithKeyPrefix(prefix))
				exercise(t, a, b, "job-"+name, user == "app", relock.WithFencing(), relock.WithMetadata("m"))

				ctx := ctxT(t, 10*time.Second)
				l, err := a.Obtain(ctx, "attach-"+name, 5*time.Second)
				if err != nil {
					t.Fatalf("Obtain: %v", err)
				}
				same, err := b.Attach(ctx, "attach-"+name, l.Token())
				if err != nil {
					t.Fatalf("Attach: %v", err)
				}
				if err := same.Release(ctx); err != nil {
					t.Fatalf("Release of the attached lock: %v", err)
				}
				if user == "app" {
					_, err := a.Obtain(ctx, "replicas-"+name, time.Second, relock.WithReplicas(1, 20*time.Millisecond))
					if !errors.Is(err, relock.ErrTooFewReplicas) {
						t.Fatalf("Obtain WithReplicas on a server without replicas = %v; want ErrTooFewReplicas", err)
					}
				}
			})
		}
		r, err := srv.Do("ACL", "LOG")
		if err != nil {
			t.Fatal(err)
		}
		entries, _ := r.([]any)
		for _, e := range entries {
			fields, _ := e.([]any)
			kv := map[string]string{}
			for i := 0; i+1 < len(fields); i += 2 {
				kv[asText(fields[i])] = asText(fields[i+1])
			}
			if kv["username"] == user && !slices.Contains(allowed[user], kv["object"]) {
				t.Errorf("user %s (%s): the server refused %s %q (%s)", user, line, kv["reason"], kv["object"], kv["context"])
			}
		}
	}
}

// asText is a reply's text, whether it came as a string or as bytes.
func asText(v any) string {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return fmt.Sprint(v)
}

// TestHandOverWithoutPexpireat: a Redis user whose ACL predates the early
// hand-over (docs/permissions.md's line without +pexpireat) still gets
// every hand-over: the release script keeps the claim's relative expiry
// when PEXPIREAT is refused, and announces the hand-over's time, so the
// waiter confirms first. The key always has an expiry, and the only
// refusal is PEXPIREAT's.
func TestHandOverWithoutPexpireat(t *testing.T) {
	testredis.SkipShort(t, "starts a private Redis server")
	srv := testredis.Start(t)
	if _, err := srv.Do("ACL", "SETUSER", "old", "reset", "on", ">pw", "~old:*", "&old:*",
		"+set", "+get", "+del", "+pexpire", "+pttl", "+exists", "+incr", "+time", "+lindex", "+lpop", "+rpush",
		"+lrange", "+lrem", "+eval", "+evalsha", "+publish", "+subscribe", "+unsubscribe", "+ping"); err != nil {
		t.Fatal(err)
	}
	for name, newConn := range userConns(srv.Addr(), "old") {
		t.Run(name, func(t *testing.T) {
			a := newClient(t, newConn(t), relock.WithKeyPrefix("old:"))
			b := newClient(t, newConn(t), relock.WithKeyPrefix("old:"))
			exercise(t, a, b, "job-"+name, true, relock.WithFencing())
			if r, err := srv.Do("PTTL", "old:job-"+name); err != nil || r.(int64) == -1 {
				t.Fatalf("PTTL of the lock key: %v, %v: a key without expiry", r, err)
			}
		})
	}
	r, err := srv.Do("ACL", "LOG")
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, e := range r.([]any) {
		fields, _ := e.([]any)
		kv := map[string]string{}
		for i := 0; i+1 < len(fields); i += 2 {
			kv[asText(fields[i])] = asText(fields[i+1])
		}
		if kv["username"] != "old" {
			continue
		}
		switch kv["object"] {
		case "pexpireat":
			refused++
		case "cluster|slots": // rueidis asks; see TestPermissionsDoc
		default:
			t.Errorf("the server refused %s %q (%s)", kv["reason"], kv["object"], kv["context"])
		}
	}
	if refused == 0 {
		t.Error("no PEXPIREAT was refused: the hand-overs did not go through the release script's fallback")
	}
}
