//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"go.uber.org/goleak"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// relockOutput runs relock to its end and returns its exit code, stdout and
// stderr.
func relockOutput(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	p := startRelock(t, args...)
	code = p.wait(30 * time.Second)
	return code, p.stdout.String(), p.stderr.String()
}

func statusOf(t *testing.T, url, key string) (statusJSON, int) {
	t.Helper()
	code, out, errOut := relockOutput(t, "status", "-json", "-url", url, key)
	var st statusJSON
	if code != exitOK && code != exitNotHeld {
		t.Fatalf("status: exit code %d\nstderr:\n%s", code, errOut)
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -json printed %q: %v", out, err)
	}
	return st, code
}

// TestStatus checks what relock status reports about a lock that relock
// run holds, with a waiter queued behind it, and once it is free.
func TestStatus(t *testing.T) {
	s := testredis.Start(t)
	const key = "relock-cli:status"
	a, dir, env := holder(t, s.URL(), key, "-meta", "nightly report, ticket 42", "-ttl", "20s")

	// A waiter queues for a hand-over.
	b := startRelock(t, "run", "-url", s.URL(), key, "--", "true")
	deadline := time.Now().Add(20 * time.Second)
	var st statusJSON
	for {
		var code int
		st, code = statusOf(t, s.URL(), key)
		if code != exitOK {
			t.Fatalf("status exit code %d while the lock is held, want 0", code)
		}
		if st.Waiters == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	fence, _ := strconv.ParseInt(env[2], 10, 64)
	want := statusJSON{Key: key, Held: true, Token: env[1], Metadata: "nightly report, ticket 42", TTLms: st.TTLms, Fence: fence, Waiters: 1}
	if st != want {
		t.Errorf("status -json = %+v, want %+v", st, want)
	}
	if st.TTLms <= 0 || st.TTLms > 20000 {
		t.Errorf("ttl_ms = %d, want in (0, 20000]", st.TTLms)
	}

	code, out, errOut := relockOutput(t, "status", "-url", s.URL(), key)
	if code != exitOK {
		t.Errorf("status: exit code %d, want 0\nstderr:\n%s", code, errOut)
	}
	for _, line := range []string{"held      yes", "token     " + env[1], "metadata  nightly report, ticket 42", "fence     " + env[2], "waiters   1"} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("status output lacks %q:\n%s", line, out)
		}
	}

	touch(t, filepath.Join(dir, "go"))
	if code := a.wait(20 * time.Second); code != 0 {
		t.Fatalf("holder: exit code %d\nstderr:\n%s", code, a.stderr.String())
	}
	if code := b.wait(20 * time.Second); code != 0 {
		t.Fatalf("waiter: exit code %d\nstderr:\n%s", code, b.stderr.String())
	}
	st, code = statusOf(t, s.URL(), key)
	if code != exitNotHeld || st.Held || st.Token != "" || st.Waiters != 0 {
		t.Errorf("status of a free lock: exit code %d, %+v; want 1, not held, no waiters", code, st)
	}
	if st.Fence <= fence {
		t.Errorf("fence %d after a second holder, want more than the first holder's %d", st.Fence, fence)
	}
}

// TestStatusDefaultMetadata checks the metadata relock run stores unless
// -meta says otherwise: host, relock's pid, CMD's name (not its arguments,
// which may hold secrets).
func TestStatusDefaultMetadata(t *testing.T) {
	s := testredis.Start(t)
	const key = "relock-cli:status:meta"
	a, dir, _ := holder(t, s.URL(), key)
	st, _ := statusOf(t, s.URL(), key)
	host, _ := os.Hostname()
	var (
		gotHost, start, cmd string
		pid                 int
	)
	n, err := fmt.Sscanf(strings.ReplaceAll(st.Metadata, "=", " "), "host %s pid %d start %s cmd %s", &gotHost, &pid, &start, &cmd)
	at, terr := time.Parse(time.RFC3339, start)
	if n != 4 || err != nil || gotHost != host || pid != a.cmd.Process.Pid || cmd != "sh" || terr != nil || time.Since(at) < 0 || time.Since(at) > time.Minute {
		t.Errorf("metadata %q, want \"host=%s pid=%d start=<RFC 3339, under a minute ago> cmd=sh\"", st.Metadata, host, a.cmd.Process.Pid)
	}
	touch(t, filepath.Join(dir, "go"))
	a.wait(20 * time.Second)
}

// TestReleaseForce releases a lock that relock run holds: the refusal
// without --force, -token, the hand-over to a waiter, and the holder
// stopping its CMD with exit 122.
func TestReleaseForce(t *testing.T) {
	t.Parallel() // a private server of its own; mostly waiting on timeouts
	s := testredis.Start(t)
	const key = "relock-cli:release"
	a, _, env := holder(t, s.URL(), key, "-ttl", "3s")

	code, _, errOut := relockOutput(t, "release", "-url", s.URL(), key)
	if code != exitError || !strings.Contains(errOut, "--force") {
		t.Errorf("release without --force: exit code %d, want %d naming --force\nstderr:\n%s", code, exitError, errOut)
	}
	code, _, errOut = relockOutput(t, "release", "--force", "-token", strings.Repeat("0", 32), "-url", s.URL(), key)
	if code != exitNotRelease {
		t.Errorf("release --force with another token: exit code %d, want %d\nstderr:\n%s", code, exitNotRelease, errOut)
	}
	if v, _ := s.Do("GET", key); heldToken(v) != env[1] {
		t.Fatalf("after refused releases the key holds %#v, want the holder's token", v)
	}

	log := filepath.Join(t.TempDir(), "waiter")
	b := startRelock(t, "run", "-url", s.URL(), key, "--", "sh", "-c", `echo "$RELOCK_TOKEN" > "$0"`, log)
	time.Sleep(200 * time.Millisecond) // let it queue; if not yet, it takes the free lock all the same

	code, out, errOut := relockOutput(t, "release", "--force", "-token", env[1], "-url", s.URL(), key)
	if code != exitOK || !strings.Contains(out, "released") {
		t.Fatalf("release --force -token: exit code %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if code := b.wait(20 * time.Second); code != 0 {
		t.Errorf("waiter: exit code %d, want 0\nstderr:\n%s", code, b.stderr.String())
	}
	if got := strings.TrimSpace(waitFile(t, log, time.Second, nil)); got == env[1] || len(got) != 32 {
		t.Errorf("waiter ran with token %q, want a token of its own", got)
	}
	// The holder finds out at its next refresh (every second here).
	if code := a.wait(20 * time.Second); code != exitLost {
		t.Errorf("holder: exit code %d, want %d (lost)\nstderr:\n%s", code, exitLost, a.stderr.String())
	}

	code, _, errOut = relockOutput(t, "release", "--force", "-url", s.URL(), key)
	if code != exitNotRelease || !strings.Contains(errOut, "not held") {
		t.Errorf("release --force of a free lock: exit code %d, want %d\nstderr:\n%s", code, exitNotRelease, errOut)
	}
}

// TestStatusReleaseInProcess runs status and release through run() against
// miniredis with every driver, for the race detector and machines without
// Redis.
func TestStatusReleaseInProcess(t *testing.T) {
	defer goleak.VerifyNone(t, ignoreBuild)
	mr, err := miniredis.Run()
	if err != nil {
		t.Fatal(err)
	}
	defer mr.Close() // before goleak looks
	url := "redis://" + mr.Addr()
	ctx := context.Background()
	client, err := relock.Open("goredis", url)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	for _, driver := range wantAdapters {
		key := "k-" + driver
		lock, err := client.Obtain(ctx, key, time.Minute, relock.WithMetadata("m"))
		if err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		if code := run(ctx, []string{"status", "-driver", driver, "-url", url, "-json", key}, &stdout, &stderr); code != exitOK {
			t.Fatalf("%s: status: exit code %d\n%s", driver, code, stderr.String())
		}
		var st statusJSON
		if err := json.Unmarshal(stdout.Bytes(), &st); err != nil || !st.Held || st.Token != lock.Token() || st.Metadata != "m" {
			t.Errorf("%s: status -json = %s (%v), want held by %s with metadata m", driver, stdout.String(), err, lock.Token())
		}

		stdout.Reset()
		if code := run(ctx, []string{"release", "-force", "-driver", driver, "-url", url, key}, &stdout, &stderr); code != exitOK {
			t.Fatalf("%s: release: exit code %d\n%s", driver, code, stderr.String())
		}
		if mr.Exists(key) {
			t.Errorf("%s: the key is still there after release --force", driver)
		}
		if code := run(ctx, []string{"status", "-driver", driver, "-url", url, key}, &stdout, &stderr); code != exitNotHeld {
			t.Errorf("%s: status after release: exit code %d, want %d", driver, code, exitNotHeld)
		}
	}
}

func TestStatusReleaseUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want int
		says string
	}{
		{[]string{"status", "-h"}, exitOK, "Exit status"},
		{[]string{"release", "-h"}, exitOK, "Exit status"},
		{[]string{"status"}, exitError, "missing KEY"},
		{[]string{"status", "a", "b"}, exitError, "unexpected argument"},
		{[]string{"status", ""}, exitError, "empty KEY"},
		{[]string{"status", "-driver", "nosuch", "k"}, exitError, "unknown driver"},
		{[]string{"release", "k"}, exitError, "without --force"},
		{[]string{"status", "-bogus", "k"}, exitError, "flag provided but not defined: -bogus (relock status -h lists the flags)"},
		{[]string{"release", "k", "-force", "-bogus"}, exitError, "flag provided but not defined: -bogus (relock release -h lists the flags)"},
		{[]string{"status", "-timeout", "-1s", "k"}, exitError, "-timeout"},
		{[]string{"release", "--force"}, exitError, "missing KEY"},
		{[]string{"release", "--force", "-token", "nothex", "-url", "redis://127.0.0.1:1", "k"}, exitError, "token"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, &stdout, &stderr)
		if code != tt.want || !strings.Contains(stderr.String(), tt.says) {
			t.Errorf("run(%q) = %d, want %d with %q on stderr\nstderr:\n%s", tt.args, code, tt.want, tt.says, stderr.String())
		}
	}
}
