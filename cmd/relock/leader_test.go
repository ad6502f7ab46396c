//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"go.uber.org/goleak"

	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// leaderScript is a CMD for relock leader: it logs a section start (fence,
// nanosecond time) to $0/log, writes RELOCK_ELECTION and RELOCK_VALUE to
// $0/env.VALUE, runs until $0/go.VALUE exists, logs the section's end and
// exits $1.
const leaderScript = `echo "start $RELOCK_FENCE $(date +%s%N)" >> "$0/log"
echo "$RELOCK_ELECTION $RELOCK_VALUE $RELOCK_KEY" > "$0/env.tmp.$RELOCK_VALUE" && mv "$0/env.tmp.$RELOCK_VALUE" "$0/env.$RELOCK_VALUE"
while [ ! -e "$0/go.$RELOCK_VALUE" ]; do sleep 0.02; done
echo "end $RELOCK_FENCE $(date +%s%N)" >> "$0/log"
exit $1`

// TestLeaderOneAtATime runs two relock leader processes on one election:
// the second campaigns (a waiter on the key) while the first's CMD runs,
// runs its own CMD only once the first has exited and resigned, and each
// exits with its CMD's status. The sections never overlap, the fences
// increase, and CMD sees the election's name and its value.
func TestLeaderOneAtATime(t *testing.T) {
	s := testredis.Start(t)
	const name = "relock-cli:leader"
	dir := t.TempDir()
	a := startRelock(t, "leader", "-url", s.URL(), "-ttl", "2s", "-value", "a", name, "--", "sh", "-c", leaderScript, dir, "3")
	if got := strings.TrimSpace(waitFile(t, filepath.Join(dir, "env.a"), 20*time.Second, a)); got != name+" a "+name {
		t.Errorf("CMD's RELOCK_ELECTION, RELOCK_VALUE, RELOCK_KEY = %q, want %q", got, name+" a "+name)
	}
	if info := inspect(t, s, name); info.Metadata != "a" {
		t.Errorf("relock status shows the leader's value %q, want %q", info.Metadata, "a")
	}
	b := startRelock(t, "leader", "-url", s.URL(), "-ttl", "2s", "-value", "b", name, "--", "sh", "-c", leaderScript, dir, "0")
	deadline := time.Now().Add(20 * time.Second)
	for inspect(t, s, name).Waiters == 0 {
		if !b.running() || time.Now().After(deadline) {
			t.Fatalf("the second leader did not campaign (running %v)\nstderr:\n%s", b.running(), b.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A refresh of a's term goes by while b campaigns.
	time.Sleep(700 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(dir, "env.b")); err == nil {
		t.Fatalf("the second leader's CMD runs while the first leads")
	}
	touch(t, filepath.Join(dir, "go.a"))
	if code := a.wait(20 * time.Second); code != 3 {
		t.Errorf("first leader: exit code %d, want CMD's 3\nstderr:\n%s", code, a.stderr.String())
	}
	waitFile(t, filepath.Join(dir, "env.b"), 20*time.Second, b)
	touch(t, filepath.Join(dir, "go.b"))
	if code := b.wait(20 * time.Second); code != 0 {
		t.Errorf("second leader: exit code %d, want 0\nstderr:\n%s", code, b.stderr.String())
	}
	checkSections(t, filepath.Join(dir, "log"), 2)
	if n := redisInt(t, s, "EXISTS", name); n != 0 {
		t.Errorf("the election's key is still there after both leaders resigned")
	}
}

// TestLeaderLost deletes the election's key under a running CMD: relock
// stops CMD with -kill-signal and exits 122, as relock run does when its
// lock is lost; a campaigner waiting behind it is elected.
func TestLeaderLost(t *testing.T) {
	s := testredis.Start(t)
	const name = "relock-cli:leader-lost"
	dir := t.TempDir()
	p := startRelock(t, "leader", "-url", s.URL(), "-ttl", "900ms", name, "--", "sh", "-c",
		`trap 'echo TERM > "$0/log"; exit 0' TERM; echo ready > "$0/ready"; while :; do sleep 0.02; done`, dir)
	waitFile(t, filepath.Join(dir, "ready"), 20*time.Second, p)
	if n := redisInt(t, s, "DEL", name); n != 1 {
		t.Fatalf("DEL %s = %d, want 1", name, n)
	}
	if code := p.wait(20 * time.Second); code != exitLost {
		t.Errorf("exit code %d, want %d (lost)\nstderr:\n%s", code, exitLost, p.stderr.String())
	}
	if got := strings.TrimSpace(waitFile(t, filepath.Join(dir, "log"), time.Second, nil)); got != "TERM" {
		t.Errorf("CMD's trap logged %q, want TERM", got)
	}
	if !strings.Contains(p.stderr.String(), "lost") {
		t.Errorf("stderr does not say leadership was lost:\n%s", p.stderr.String())
	}
}

// TestLeaderStoppedPastTTL stops a leading relock with SIGSTOP for longer
// than its TTL: its term expires, a waiting campaigner is elected, and when
// the first relock continues it finds its term over, stops its CMD and
// exits 122.
func TestLeaderStoppedPastTTL(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a term's TTL to run out")
	}
	s := testredis.Start(t)
	const name, ttl = "relock-cli:leader-stopped", 600 * time.Millisecond
	dir := t.TempDir()
	a := startRelock(t, "leader", "-url", s.URL(), "-ttl", ttl.String(), "-value", "a", name, "--", "sh", "-c", leaderScript, dir, "0")
	waitFile(t, filepath.Join(dir, "env.a"), 20*time.Second, a)
	b := startRelock(t, "leader", "-url", s.URL(), "-ttl", ttl.String(), "-value", "b", name, "--", "sh", "-c", leaderScript, dir, "0")
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(dir, "env.b"), 20*time.Second, b)
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if code := a.wait(20 * time.Second); code != exitLost {
		t.Errorf("the stopped leader: exit code %d, want %d (lost)\nstderr:\n%s", code, exitLost, a.stderr.String())
	}
	touch(t, filepath.Join(dir, "go.b"))
	if code := b.wait(20 * time.Second); code != 0 {
		t.Errorf("the next leader: exit code %d, want 0\nstderr:\n%s", code, b.stderr.String())
	}
}

// TestLeaderNotElectedOrUnavailable checks that contention and outages
// exit as relock run's do: 75 (or -E) when another leads, 69 when Redis
// does not answer, also when it stops answering while relock campaigns
// behind a leader.
func TestLeaderNotElectedOrUnavailable(t *testing.T) {
	s := testredis.Start(t)
	const name = "relock-cli:leader-busy"
	dir := t.TempDir()
	leader := startRelock(t, "leader", "-url", s.URL(), "-ttl", "30s", "-value", "a", name, "--", "sh", "-c", leaderScript, dir, "0")
	waitFile(t, filepath.Join(dir, "env.a"), 20*time.Second, leader)

	code, stderr := runRelock(t, "leader", "-url", s.URL(), "-n", name, "--", "true")
	if code != exitNotObtained || !strings.Contains(stderr, "not elected") {
		t.Errorf("-n while another leads: exit code %d, want %d (not elected)\nstderr:\n%s", code, exitNotObtained, stderr)
	}
	code, stderr = runRelock(t, "leader", "-url", s.URL(), "-wait", "0.2", "-E", "0", name, "--", "true")
	if code != 0 {
		t.Errorf("-wait 0.2 -E 0 while another leads: exit code %d, want 0\nstderr:\n%s", code, stderr)
	}
	code, stderr = runRelock(t, "leader", "-url", "redis://"+refusedAddr(t), "-n", name, "--", "true")
	if code != exitUnavailable || !strings.Contains(stderr, "connection refused") {
		t.Errorf("nothing listens: exit code %d, want %d\nstderr:\n%s", code, exitUnavailable, stderr)
	}

	if !testing.Short() {
		// The server stops answering while a campaigner waits: the wait
		// ends, and relock says 69, not 75.
		w := startRelock(t, "leader", "-url", s.URL(), "-timeout", "1s", "-connect-timeout", "1s", "-wait", "3", name, "--", "true")
		deadline := time.Now().Add(20 * time.Second)
		for inspect(t, s, name).Waiters == 0 {
			if !w.running() || time.Now().After(deadline) {
				t.Fatalf("the campaigner did not queue (running %v)\nstderr:\n%s", w.running(), w.stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		thaw := adaptertest.Freeze(t, s)
		code := w.wait(30 * time.Second)
		thaw()
		if code != exitUnavailable {
			t.Errorf("server frozen while campaigning: exit code %d, want %d\nstderr:\n%s", code, exitUnavailable, w.stderr.String())
		}
	}

	touch(t, filepath.Join(dir, "go.a"))
	if code := leader.wait(20 * time.Second); code != 0 {
		t.Errorf("leader: exit code %d, want 0\nstderr:\n%s", code, leader.stderr.String())
	}
}

// TestLeaderInProcess runs "relock leader" through run() against
// miniredis, for the race detector and machines without Redis.
func TestLeaderInProcess(t *testing.T) {
	defer goleak.VerifyNone(t)
	mr, err := miniredis.Run()
	if err != nil {
		t.Fatal(err)
	}
	defer mr.Close() // before goleak looks
	url := "redis://" + mr.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("ExitStatusAndEnvironment", func(t *testing.T) {
		dir := t.TempDir()
		var stderr bytes.Buffer
		code := run(ctx, []string{"leader", "-url", url, "-value", "v1", "e1", "--", "sh", "-c",
			`echo "$RELOCK_ELECTION $RELOCK_VALUE $RELOCK_FENCE" > "$0/env"; exit 4`, dir}, &stderr, &stderr)
		if code != 4 {
			t.Errorf("exit code %d, want 4\n%s", code, stderr.String())
		}
		b, _ := os.ReadFile(filepath.Join(dir, "env"))
		f := strings.Fields(string(b))
		if len(f) != 3 || f[0] != "e1" || f[1] != "v1" {
			t.Errorf("CMD's environment: %q, want e1 v1 FENCE", b)
		} else if _, err := strconv.ParseInt(f[2], 10, 64); err != nil {
			t.Errorf("RELOCK_FENCE = %q, want a number", f[2])
		}
		if mr.Exists("e1") {
			t.Errorf("the election's key is left behind")
		}
	})
	t.Run("NotElected", func(t *testing.T) {
		mr.Set("e2", "someone-else")
		defer mr.Del("e2")
		var stderr bytes.Buffer
		if code := run(ctx, []string{"leader", "-url", url, "-n", "e2", "--", "true"}, &stderr, &stderr); code != exitNotObtained {
			t.Errorf("exit code %d, want %d\n%s", code, exitNotObtained, stderr.String())
		}
	})
	t.Run("Lost", func(t *testing.T) {
		dir := t.TempDir()
		go func() {
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
					mr.Del("e3")
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		var stderr bytes.Buffer
		code := run(ctx, []string{"leader", "-url", url, "-ttl", "600ms", "e3", "--", "sh", "-c",
			`echo > "$0/ready"; exec sleep 30`, dir}, &stderr, &stderr)
		if code != exitLost {
			t.Errorf("exit code %d, want %d\n%s", code, exitLost, stderr.String())
		}
	})
	t.Run("Usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"leader"},
			{"leader", "e4"},
			{"leader", "-value", "", "e4", "--", "true"},
			{"leader", "-n", "-wait", "1", "e4", "--", "true"},
			{"leader", "-c", "true", "e4", "--", "true"},
		} {
			var stderr bytes.Buffer
			if code := run(ctx, append(args[:1:1], append([]string{"-url", url}, args[1:]...)...), &stderr, &stderr); code != exitError {
				t.Errorf("%q: exit code %d, want %d\n%s", args, code, exitError, stderr.String())
			}
		}
		var stderr bytes.Buffer
		if code := run(ctx, []string{"leader", "-url", url, "e4", "--", "/nonexistent/cmd"}, &stderr, &stderr); code != exitNotFound {
			t.Errorf("CMD not found: exit code %d, want %d\n%s", code, exitNotFound, stderr.String())
		}
	})
}
