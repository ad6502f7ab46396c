package adaptertest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// outageDeadline is the context deadline of the calls CheckOutages makes
// against a Redis that cannot answer; outageLimit is how long any of its
// calls may take at most. It is generous: the machine may be shared, and
// a call without deadline waits for the client's own dial retries
// (go-redis: about 2 s against a refused port).
const (
	outageDeadline = 300 * time.Millisecond
	outageLimit    = 10 * time.Second
)

// CheckOutages checks, through relock.Open(driverName, ...), that relock
// tells "Redis is unavailable" from "the lock is taken" (docs/errors.md):
//
//   - no answer (a listener that never replies), a refused connection, and
//     rediss:// against a plaintext server: Obtain, TryObtain and
//     Obtain with WithMaxWait fail with relock.ErrUnavailable, never
//     relock.ErrNotObtained, with the context's error when the context
//     ended the call and the last underlying error (ECONNREFUSED, say);
//   - refusals for now (OOM under noeviction, BUSY while a script runs,
//     READONLY on a replica): the same, and TryObtain without deadline
//     fails at once with driver.ErrServerRefused and the server's text;
//     nothing is left;
//   - NOPERM (an ACL user whose key pattern excludes the lock's key):
//     relock.ErrNoPermission at once, for Obtain and Inspect, and nothing
//     is left; a wrong password (WRONGPASS) too;
//   - a lock held by another owner still gives ErrNotObtained, also when
//     Redis starts refusing after a try saw the holder.
//
// It starts one private server, whose configuration it changes and
// restores; driverName must be registered (import the adapter).
func CheckOutages(t *testing.T, driverName string) {
	open := func(t *testing.T, dsn string) *relock.Client {
		t.Helper()
		c, err := relock.Open(driverName, dsn)
		if err != nil {
			t.Fatalf("Open(%q): %v", dsn, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}

	t.Run("BlackHole", func(t *testing.T) {
		testredis.SkipShort(t, "a server that never answers (a client may wait seconds to close)")
		c := open(t, "redis://"+SilentServer(t))
		wantUnavailable(t, "Obtain", obtainWithin(t, c, "relock-test:outage", outageDeadline), true)
		wantUnavailable(t, "TryObtain", tryObtainWithin(t, c, "relock-test:outage", outageDeadline), true)
		start := time.Now()
		_, err := c.Obtain(context.Background(), "relock-test:outage", time.Second, relock.WithMaxWait(outageDeadline))
		checkTook(t, "Obtain with WithMaxWait", start)
		wantUnavailable(t, "Obtain with WithMaxWait", err, false)
	})

	t.Run("RefusedPort", func(t *testing.T) {
		c := open(t, "redis://"+closedPort(t))
		// (A client may still be dialling, retrying, when the deadline
		// comes: then the last error is the deadline's.)
		wantUnavailable(t, "Obtain", obtainWithin(t, c, "relock-test:outage", outageDeadline), true)
		// The run-once pattern: one try, no deadline. It must not say
		// "taken".
		start := time.Now()
		_, err := c.TryObtain(context.Background(), "relock-test:outage", time.Second)
		checkTook(t, "TryObtain", start)
		wantUnavailable(t, "TryObtain without deadline", err, false)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("TryObtain without deadline = %v: the last underlying error, ECONNREFUSED, is not visible", err)
		}
	})

	srv := testredis.Start(t)
	do := func(t *testing.T, args ...string) any {
		t.Helper()
		v, err := srv.Do(args...)
		if err != nil {
			t.Fatalf("%s: %v", strings.Join(args, " "), err)
		}
		return v
	}
	// gone checks that nothing of ours is left under key once clean-ups
	// have run (they run in the background: Close waits for them).
	gone := func(t *testing.T, c *relock.Client, key string) {
		t.Helper()
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if v := do(t, "EXISTS", key); v != int64(0) {
			t.Errorf("%s is left in Redis after a failed Obtain", key)
		}
	}

	t.Run("TLSMismatch", func(t *testing.T) {
		testredis.SkipShort(t, "TLS against a plaintext server (a client may wait seconds to close)")
		c := open(t, "rediss://"+srv.Addr())
		wantUnavailable(t, "Obtain", obtainWithin(t, c, "relock-test:outage", outageDeadline), true)
		wantUnavailable(t, "TryObtain", tryObtainWithin(t, c, "relock-test:outage", outageDeadline), true)
	})

	t.Run("Taken", func(t *testing.T) {
		key := "relock-test:outage:taken"
		holder := open(t, srv.URL())
		l, err := holder.Obtain(context.Background(), key, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c := open(t, srv.URL())
		_, err = c.TryObtain(context.Background(), key, time.Second)
		wantTaken(t, "TryObtain of a held lock", err, false)
		wantTaken(t, "Obtain of a held lock", obtainWithin(t, c, key, outageDeadline), true)
		if err := l.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("OOM", func(t *testing.T) {
		testredis.SkipShort(t, "a private server with a OOM fault")
		key := "relock-test:outage:oom"
		// A lock taken before the server runs out of memory, and a
		// waiter that sees it held, then only refusals.
		holder := open(t, srv.URL())
		held, err := holder.Obtain(context.Background(), key+":held", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		oom := func() {
			do(t, "CONFIG", "SET", "maxmemory-policy", "noeviction")
			do(t, "CONFIG", "SET", "maxmemory", "1")
		}
		t.Cleanup(func() { do(t, "CONFIG", "SET", "maxmemory", "0") })

		c := open(t, srv.URL())
		ctx, cancel := context.WithTimeout(context.Background(), outageDeadline)
		defer cancel()
		start := time.Now()
		_, err = c.Obtain(ctx, key+":held", time.Second, relock.WithRetry(relock.RetryFunc(func(n int) (time.Duration, bool) {
			if n == 1 {
				oom() // after the first try, which saw the holder
			}
			return 10 * time.Millisecond, true
		})))
		checkTook(t, "Obtain, held then OOM", start)
		wantTaken(t, "Obtain of a held lock, then OOM", err, true)
		// Near the deadline the waiter's place has ended (it must not
		// draw a hand-over it cannot take in time) and its last tries
		// are plain ones that only read: Redis lets them through under
		// OOM, they see the holder, and "taken" is the whole answer.
		// Refused tries before a successful one are not reported; when
		// the last ones were refused, the refusal must be named.
		t.Logf("Obtain of a held lock, then OOM: %v", err)
		if strings.Contains(err.Error(), "failed tries") && !strings.Contains(err.Error(), "OOM") {
			t.Errorf("Obtain of a held lock, then OOM = %v: failed tries, but the OOM refusal is not named", err)
		}

		err = obtainWithin(t, c, key, outageDeadline)
		// (A client may retry a refusal itself until the deadline, as
		// go-redis does READONLY: then the last error is the deadline's.)
		wantUnavailable(t, "Obtain", err, true)
		start = time.Now()
		_, err = c.TryObtain(context.Background(), key, time.Second)
		checkTook(t, "TryObtain", start)
		wantUnavailable(t, "TryObtain without deadline", err, false)
		wantServerRefused(t, "TryObtain without deadline", err, "OOM")
		// A lock already held can still be given back: DEL frees memory.
		if err := held.Release(context.Background()); err != nil {
			t.Errorf("Release under OOM: %v", err)
		}
		do(t, "CONFIG", "SET", "maxmemory", "0")
		gone(t, c, key)
	})

	t.Run("BUSY", func(t *testing.T) {
		testredis.SkipShort(t, "a private server with a BUSY fault")
		key := "relock-test:outage:busy"
		do(t, "CONFIG", "SET", "busy-reply-threshold", "50")
		t.Cleanup(func() { do(t, "CONFIG", "SET", "busy-reply-threshold", "5000") })
		c := open(t, srv.URL())
		stop := busyScript(t, srv)
		err := obtainWithin(t, c, key, outageDeadline)
		wantUnavailable(t, "Obtain", err, true)
		start := time.Now()
		_, err = c.TryObtain(context.Background(), key, time.Second)
		checkTook(t, "TryObtain", start)
		wantUnavailable(t, "TryObtain without deadline", err, false)
		wantServerRefused(t, "TryObtain without deadline", err, "BUSY")
		stop()
		gone(t, c, key)
	})

	t.Run("READONLY", func(t *testing.T) {
		testredis.SkipShort(t, "a private server with a READONLY fault")
		key := "relock-test:outage:readonly"
		// A replica of a primary that is not there: writes get READONLY
		// at once.
		do(t, "REPLICAOF", "127.0.0.1", strconv.Itoa(closedPortNumber(t)))
		t.Cleanup(func() { do(t, "REPLICAOF", "NO", "ONE") })
		c := open(t, srv.URL())
		err := obtainWithin(t, c, key, outageDeadline)
		wantUnavailable(t, "Obtain", err, true)
		start := time.Now()
		_, err = c.TryObtain(context.Background(), key, time.Second)
		checkTook(t, "TryObtain", start)
		wantUnavailable(t, "TryObtain without deadline", err, false)
		wantServerRefused(t, "TryObtain without deadline", err, "READONLY")
		do(t, "REPLICAOF", "NO", "ONE")
		gone(t, c, key)
	})

	t.Run("NOPERM", func(t *testing.T) {
		testredis.SkipShort(t, "a private server with a NOPERM fault")
		key := "relock-test:outage:noperm"
		// The user may touch only app:* keys and channels: not the lock.
		do(t, "ACL", "SETUSER", "app", "reset", "on", ">s3cret", "~app:*", "&app:*", "+@all")
		t.Cleanup(func() { do(t, "ACL", "DELUSER", "app") })
		c := open(t, "redis://app:s3cret@"+srv.Addr())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.Obtain(ctx, key, time.Second)
		checkTook(t, "Obtain", start)
		wantNoPermission(t, "Obtain", err, "NOPERM")
		_, err = c.Inspect(ctx, key)
		wantNoPermission(t, "Inspect", err, "NOPERM")
		gone(t, c, key)

		// A wrong password is refused for good too.
		c = open(t, "redis://app:wrong@"+srv.Addr())
		start = time.Now()
		_, err = c.Obtain(ctx, key, time.Second)
		checkTook(t, "Obtain with a wrong password", start)
		wantNoPermission(t, "Obtain with a wrong password", err, "WRONGPASS")
	})
}

// obtainWithin runs Obtain (DefaultRetry) with a context of deadline d and
// checks it returned within outageLimit.
func obtainWithin(t *testing.T, c *relock.Client, key string, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	_, err := c.Obtain(ctx, key, time.Second)
	checkTook(t, "Obtain", start)
	return err
}

// tryObtainWithin is obtainWithin for TryObtain.
func tryObtainWithin(t *testing.T, c *relock.Client, key string, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	_, err := c.TryObtain(ctx, key, time.Second)
	checkTook(t, "TryObtain", start)
	return err
}

func checkTook(t *testing.T, what string, start time.Time) {
	t.Helper()
	if took := time.Since(start); took > outageLimit {
		t.Errorf("%s returned after %v, above %v", what, took, outageLimit)
	}
}

// wantUnavailable checks that err says "Redis is unavailable", not "taken";
// with deadline, that it also matches context.DeadlineExceeded.
func wantUnavailable(t *testing.T, what string, err error, deadline bool) {
	t.Helper()
	t.Logf("%s: %v", what, err)
	switch {
	case !errors.Is(err, relock.ErrUnavailable):
		t.Errorf("%s = %v, want relock.ErrUnavailable", what, err)
	case errors.Is(err, relock.ErrNotObtained):
		t.Errorf("%s = %v: matches relock.ErrNotObtained although no holder was seen", what, err)
	case deadline && !errors.Is(err, context.DeadlineExceeded):
		t.Errorf("%s = %v, want context.DeadlineExceeded too", what, err)
	}
}

// wantTaken checks that err says "taken", not "unavailable".
func wantTaken(t *testing.T, what string, err error, deadline bool) {
	t.Helper()
	t.Logf("%s: %v", what, err)
	switch {
	case !errors.Is(err, relock.ErrNotObtained):
		t.Errorf("%s = %v, want relock.ErrNotObtained", what, err)
	case errors.Is(err, relock.ErrUnavailable):
		t.Errorf("%s = %v: matches relock.ErrUnavailable although a holder was seen", what, err)
	case deadline && !errors.Is(err, context.DeadlineExceeded):
		t.Errorf("%s = %v, want context.DeadlineExceeded too", what, err)
	}
}

// wantServerRefused checks that err keeps the refusal: it matches
// driver.ErrServerRefused and quotes code.
func wantServerRefused(t *testing.T, what string, err error, code string) {
	t.Helper()
	if !errors.Is(err, driver.ErrServerRefused) || !strings.Contains(err.Error(), code) {
		t.Errorf("%s = %v, want driver.ErrServerRefused and the server's %s", what, err, code)
	}
}

// wantNoPermission checks that err is relock.ErrNoPermission alone, with
// the server's reply, which starts with code.
func wantNoPermission(t *testing.T, what string, err error, code string) {
	t.Helper()
	t.Logf("%s: %v", what, err)
	switch {
	case !errors.Is(err, relock.ErrNoPermission) || !errors.Is(err, driver.ErrNoPermission):
		t.Errorf("%s = %v, want relock.ErrNoPermission and driver.ErrNoPermission", what, err)
	case errors.Is(err, relock.ErrNotObtained), errors.Is(err, relock.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		t.Errorf("%s = %v: want only ErrNoPermission, at once", what, err)
	case !strings.Contains(err.Error(), code):
		t.Errorf("%s = %v: the server's text is lost", what, err)
	}
}

// closedPortNumber returns a loopback port that nothing listens on (it
// was free an instant ago).
func closedPortNumber(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	return port
}

func closedPort(t *testing.T) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(closedPortNumber(t)))
}

// busyScript starts a script that runs until killed on srv, and waits
// until the server answers BUSY. It returns a function that kills the
// script (it writes nothing, so SCRIPT KILL stops it) and waits until the
// server answers again; t's clean-up calls it too.
func busyScript(t *testing.T, srv *testredis.Server) (stop func()) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	script := "while true do end"
	if _, err := fmt.Fprintf(conn, "*3\r\n$4\r\nEVAL\r\n$%d\r\n%s\r\n$1\r\n0\r\n", len(script), script); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		defer conn.Close()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			_, _ = srv.Do("SCRIPT", "KILL")
			if v, err := srv.Do("PING"); err == nil && v == "PONG" {
				// The EVAL's own reply: the script was killed.
				_ = conn.SetReadDeadline(time.Now().Add(time.Second))
				_, _ = bufio.NewReader(conn).ReadString('\n')
				return
			}
		}
		t.Errorf("the busy script on %s could not be killed", srv.Addr())
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, err := srv.Do("PING")
		if err != nil && strings.HasPrefix(err.Error(), "BUSY") {
			return stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not turn BUSY: PING = %v", err)
		}
	}
}
