package adaptertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// CheckKeyPrefixACL runs relock's whole API through d as a Redis user
// confined to a prefix (ACL ~PREFIX* &PREFIX*, keys and channels), with a
// Client made WithKeyPrefix(PREFIX) (issue 15.4): a contended Obtain that
// a release hands the lock to, fenced Obtain, metadata, Inspect, Attach, Refresh, TTL,
// Release, TryObtain, an Obtain that gives up, and Do. Redis checks the
// keys and channels of every command, inside scripts too, so a key or
// channel of relock's outside the prefix fails with NOPERM; at the end the
// server's ACL LOG must be empty, which catches refusals in background
// clean-ups as well. It runs once with a plain prefix and once with a
// prefix that carries a hash tag, on a private server (testredis.Start).
func CheckKeyPrefixACL(t *testing.T, d driver.Driver) {
	srv := testredis.Start(t)
	for i, prefix := range []string{"tenant-a:", "{tenant-b}:"} {
		t.Run(fmt.Sprintf("prefix %s", prefix), func(t *testing.T) {
			user := fmt.Sprintf("relock-acl-%d", i)
			if _, err := srv.Do("ACL", "SETUSER", user, "on", ">pw", "~"+prefix+"*", "&"+prefix+"*", "+@all"); err != nil {
				t.Fatalf("ACL SETUSER: %v", err)
			}
			t.Cleanup(func() { _, _ = srv.Do("ACL", "DELUSER", user) })
			checkPrefixACL(t, srv, d, "redis://"+user+":pw@"+srv.Addr(), prefix)
		})
	}
}

func checkPrefixACL(t *testing.T, srv *testredis.Server, d driver.Driver, dsn, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mon := srv.Monitor(t)
	open := func(opts ...relock.Option) *relock.Client {
		t.Helper()
		conn, err := d.Open(dsn)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		// The ACL bites: a key outside the prefix is refused.
		if _, err := conn.SetNX(ctx, "outside:"+prefix, "v", time.Minute); err == nil || !strings.Contains(err.Error(), "NOPERM") {
			_ = conn.Close()
			t.Fatalf("SET NX of a key outside the prefix as the confined user = %v, want NOPERM", err)
		}
		c, err := relock.New(conn, opts...)
		if err != nil {
			_ = conn.Close()
			t.Fatalf("relock.New: %v", err)
		}
		t.Cleanup(func() { _ = c.Close() }) // when the test fails early
		return c
	}
	var handedOver atomic.Bool
	observer := relock.ObserverFunc(func(e relock.Event) {
		if e.Kind == relock.EventObtained && e.HandedOver {
			handedOver.Store(true)
		}
	})
	holder := open(relock.WithKeyPrefix(prefix))
	waiter := open(relock.WithKeyPrefix(prefix), relock.WithObserver(observer))
	if _, err := srv.Do("ACL", "LOG", "RESET"); err != nil { // the refusals above
		t.Fatalf("ACL LOG RESET: %v", err)
	}

	for _, name := range []string{"job", "{user:7}:lock"} {
		// Fenced, with metadata; Key round-trips through Inspect and Attach.
		l, err := holder.Obtain(ctx, name, 10*time.Second, relock.WithFencing(), relock.WithMetadata("host=a"))
		if err != nil {
			t.Fatalf("Obtain(%q) fenced: %v", name, err)
		}
		if l.Key() != name || l.RedisKey() != prefix+name || l.Fence() <= 0 {
			t.Fatalf("Key, RedisKey, Fence = %q, %q, %d; want %q, %q and a fencing number", l.Key(), l.RedisKey(), l.Fence(), name, prefix+name)
		}
		info, err := waiter.Inspect(ctx, l.Key())
		if err != nil || !info.Held || info.Token != l.Token() || info.Metadata != "host=a" || info.Fence != l.Fence() {
			t.Fatalf("Inspect(%q) = %+v, %v; want held by %s with its metadata and fence %d", l.Key(), info, err, l.Token(), l.Fence())
		}
		if err := l.Refresh(ctx, 10*time.Second); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		if d, err := l.TTL(ctx); err != nil || d <= 0 {
			t.Fatalf("TTL = %v, %v", d, err)
		}
		al, err := waiter.Attach(ctx, l.Key(), l.Token())
		if err != nil {
			t.Fatalf("Attach(%q): %v", l.Key(), err)
		}
		if err := al.Refresh(ctx, 10*time.Second); err != nil {
			t.Fatalf("Refresh of the attached lock: %v", err)
		}

		// Contended: TryObtain is turned away, an Obtain with a short
		// budget gives up (and leaves the queue in the background), an
		// Obtain that waits is woken by the release's hand-over.
		if _, err := waiter.TryObtain(ctx, name, 10*time.Second); !errors.Is(err, relock.ErrNotObtained) {
			t.Fatalf("TryObtain of a held lock = %v, want ErrNotObtained", err)
		}
		if _, err := waiter.Obtain(ctx, name, 10*time.Second, relock.WithMaxWait(50*time.Millisecond)); !errors.Is(err, relock.ErrNotObtained) {
			t.Fatalf("Obtain of a held lock with a 50ms budget = %v, want ErrNotObtained", err)
		}
		// That Obtain leaves the queue in the background: wait for it, so
		// that the release below hands the lock to the next waiter.
		waitWaiters(ctx, t, holder, name, func(n int) bool { return n == 0 }, nil)
		handedOver.Store(false)
		type result struct {
			l   *relock.Lock
			err error
		}
		got := make(chan result, 1)
		go func() {
			l, err := waiter.Obtain(ctx, name, 10*time.Second, relock.WithFencing())
			got <- result{l, err}
		}()
		waitWaiters(ctx, t, holder, name, func(n int) bool { return n > 0 }, func() {
			select {
			case r := <-got:
				t.Fatalf("the waiter's Obtain returned %v, %v before the release", r.l, r.err)
			default:
			}
		})
		if err := l.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
		r := <-got
		if r.err != nil {
			t.Fatalf("the waiter's Obtain: %v", r.err)
		}
		if r.l.Fence() <= l.Fence() {
			t.Fatalf("the waiter's fence %d after %d; want a greater one", r.l.Fence(), l.Fence())
		}
		// The release handed the lock to the waiter, announcing it on the
		// lock's channel, within the prefix. The waiter usually takes it
		// from that message; a renewal of its place that runs first finds
		// it already ours.
		pub := mon.Next(t, func(c testredis.Command) bool {
			return c.Is("PUBLISH") && len(c.Args) == 3 && strings.HasPrefix(c.Args[2], r.l.Token()+":")
		})
		if !strings.HasPrefix(pub.Args[1], prefix) {
			t.Fatalf("the hand-over was published on %q, outside the prefix", pub.Args[1])
		}
		if !handedOver.Load() {
			t.Logf("%s: the waiter found the handed-over lock by renewing its place before the message came", name)
		}
		if err := al.Release(ctx); !errors.Is(err, relock.ErrNotHeld) {
			t.Fatalf("Release of the attached lock after the hand-over = %v, want ErrNotHeld", err)
		}
		if err := r.l.Release(ctx); err != nil {
			t.Fatalf("Release by the waiter: %v", err)
		}
	}

	ran := false
	err := holder.Do(ctx, "do", time.Second, func(ctx context.Context) error {
		info, err := waiter.Inspect(ctx, "do")
		if err != nil || !info.Held {
			return fmt.Errorf("Inspect inside Do = %+v, %v; want held", info, err)
		}
		ran = true
		return nil
	})
	if err != nil || !ran {
		t.Fatalf("Do = %v (ran %v)", err, ran)
	}

	// Close waits for the background clean-ups.
	if err := errors.Join(holder.Close(), waiter.Close()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	log, err := srv.Do("ACL", "LOG")
	if err != nil {
		t.Fatalf("ACL LOG: %v", err)
	}
	if entries, _ := log.([]any); len(entries) > 0 {
		t.Fatalf("the server refused %d commands of the confined user: %v", len(entries), entries)
	}
}

// waitWaiters polls Inspect until the lock's count of live waiters
// satisfies ok, calling each (when not nil) between polls.
func waitWaiters(ctx context.Context, t *testing.T, c *relock.Client, name string, ok func(int) bool, each func()) {
	t.Helper()
	for {
		info, err := c.Inspect(ctx, name)
		if err != nil {
			t.Fatalf("Inspect(%q): %v", name, err)
		}
		if ok(info.Waiters) {
			return
		}
		if each != nil {
			each()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Inspect(%q) still finds %d waiters", name, info.Waiters)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
