//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// refusedAddr returns a loopback address where nothing listens.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// timedRelock runs relock to its end and returns its exit code, stderr and
// how long it took.
func timedRelock(t *testing.T, args ...string) (int, string, time.Duration) {
	t.Helper()
	relockBinary(t) // not timed: the build
	start := time.Now()
	p := startRelock(t, args...)
	code := p.wait(60 * time.Second)
	return code, p.stderr.String(), p.ended.Sub(start)
}

// TestUnavailable checks that relock run, hold, status and release exit 69
// (EX_UNAVAILABLE) within seconds, naming the likely cause, when the server
// does not answer (a listener that never replies), refuses the connection,
// or speaks plaintext behind a rediss:// URL, through every driver; and
// that go-redis's own log lines stay off stderr.
func TestUnavailable(t *testing.T) {
	t.Parallel() // a private server of its own; mostly waiting on timeouts
	plain := testredis.Start(t)
	silent := adaptertest.SilentServer(t)
	refused := refusedAddr(t)
	const key = "relock-cli:unavailable"
	cases := []struct {
		name, url, says string
	}{
		{"silent", "redis://" + silent, "no answer within"},
		{"refused", "redis://" + refused, "connection refused"},
		{"tls-mismatch", "rediss://" + plain.Addr(), "TLS mismatch"},
	}
	// The bound covers -connect-timeout plus -timeout (2 s), the diagnosis
	// (1 s at most here) and the start of a binary built with -race on a
	// loaded machine; it does not measure speed.
	const bound = 20 * time.Second
	for _, driver := range wantAdapters {
		for _, tc := range cases {
			t.Run(driver+"/"+tc.name, func(t *testing.T) {
				// Mostly waiting for timeouts: in parallel.
				t.Parallel()
				if tc.name == "silent" && driver != "goredis" {
					// 6-9 s each, and -parallel is GOMAXPROCS (2 here):
					// the default driver keeps the silent case under
					// -short, every driver the refused and TLS ones.
					testredis.SkipShort(t, "the silent server through one more driver")
				}
				conn := []string{"-driver", driver, "-url", tc.url, "-timeout", "1s", "-connect-timeout", "1s"}
				runs := [][]string{append(append([]string{"run"}, conn...), "-n", key, "--", "true")}
				if tc.name == "silent" {
					// The case that exited 75 "still held" before.
					runs = append(runs,
						append(append([]string{"run"}, conn...), "-wait", "2", key, "--", "true"),
						append(append([]string{"status"}, conn...), key))
				}
				for _, args := range runs {
					code, stderr, took := timedRelock(t, args...)
					t.Logf("relock %s: exit %d after %v", args[0], code, took.Round(time.Millisecond))
					if code != exitUnavailable {
						t.Errorf("%q: exit code %d, want %d\nstderr:\n%s", args, code, exitUnavailable, stderr)
					}
					if !strings.Contains(stderr, tc.says) {
						t.Errorf("%q: stderr does not say %q:\n%s", args, tc.says, stderr)
					}
					if strings.Contains(stderr, "failed to dial") || strings.Contains(stderr, "pool.go") {
						t.Errorf("%q: the client library's log leaked onto stderr:\n%s", args, stderr)
					}
					if n := strings.Count(stderr, "\n"); n != 1 {
						t.Errorf("%q: %d lines on stderr, want 1:\n%s", args, n, stderr)
					}
					if took > bound {
						t.Errorf("%q: took %v", args, took)
					}
				}
			})
		}
	}
	// The defaults (-timeout 2s, -connect-timeout 2s) against a server that
	// never answers, the case that took 25.7 s before.
	t.Run("defaults", func(t *testing.T) {
		for _, url := range []string{"redis://" + silent, "rediss://" + plain.Addr()} {
			code, stderr, took := timedRelock(t, "run", "-url", url, "-n", key, "--", "true")
			t.Logf("%s with the default timeouts: exit %d after %v", url, code, took.Round(time.Millisecond))
			if code != exitUnavailable || took > bound {
				t.Errorf("%s: exit code %d after %v, want %d\nstderr:\n%s", url, code, took, exitUnavailable, stderr)
			}
		}
	})
	t.Run("release", func(t *testing.T) {
		code, stderr, _ := timedRelock(t, "release", "--force", "-url", "redis://"+refused, key)
		if code != exitUnavailable {
			t.Errorf("release: exit code %d, want %d\nstderr:\n%s", code, exitUnavailable, stderr)
		}
	})
	t.Run("verbose", func(t *testing.T) {
		// -v lets go-redis log again.
		code, stderr, _ := timedRelock(t, "run", "-v", "-url", "redis://"+refused, "-connect-timeout", "1s", "-n", key, "--", "true")
		if code != exitUnavailable || !strings.Contains(stderr, "failed to dial") {
			t.Errorf("-v: exit code %d, want %d with go-redis's log on stderr:\n%s", code, exitUnavailable, stderr)
		}
	})
}

// inspect reads key's state on s through relock.
func inspect(t *testing.T, s *testredis.Server, key string) relock.Info {
	t.Helper()
	c, err := relock.Open("goredis", s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := c.Inspect(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestRunCommandResolvedFirst checks that a CMD that is not found exits
// 127 (126 not executable) before relock touches Redis: with a server, no
// key is set; without one, the exit status is still 127, not 69.
func TestRunCommandResolvedFirst(t *testing.T) {
	t.Parallel() // a private server of its own
	s := testredis.Start(t)
	notExec := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const key = "relock-cli:resolved"
	for _, url := range []string{s.URL(), "redis://" + refusedAddr(t)} {
		for cmd, want := range map[string]int{"relock-no-such-command": exitNotFound, "/no/such/cmd": exitNotFound, notExec: exitCannotRun} {
			code, stderr := runRelock(t, "run", "-url", url, key, "--", cmd)
			if code != want || !strings.Contains(stderr, "the lock was not taken") {
				t.Errorf("%s via %s: exit code %d, want %d\nstderr:\n%s", cmd, url, code, want, stderr)
			}
		}
	}
	if info := inspect(t, s, key); info.Held || info.Fence != 0 || info.Waiters != 0 {
		t.Errorf("Redis was touched: %+v", info)
	}
	if n := redisInt(t, s, "DBSIZE"); n != 0 {
		t.Errorf("%d keys on the server, want none", n)
	}
}

// TestRunFlagsAfterKeyAndShell checks flags after KEY, -c, and -wait and
// -E against a held lock.
func TestRunFlagsAfterKeyAndShell(t *testing.T) {
	t.Parallel() // a private server of its own; waits for -wait
	s := testredis.Start(t)
	const key = "relock-cli:after"

	code, stderr := runRelock(t, "run", key, "-url", s.URL(), "-n", "--", "sh", "-c", "exit 7")
	if code != 7 {
		t.Errorf("flags after KEY: exit code %d, want 7\nstderr:\n%s", code, stderr)
	}
	out := filepath.Join(t.TempDir(), "out")
	code, stderr = runRelock(t, "run", key, "-url", s.URL(), "-c", `echo "$RELOCK_KEY $1" > "`+out+`"; exit 9`)
	if b, _ := os.ReadFile(out); code != 9 || string(b) != key+" \n" {
		t.Errorf("-c: exit code %d, output %q; want 9 and %q\nstderr:\n%s", code, b, key+" \n", stderr)
	}
	// A CMD's own flags after the CMD stay its own.
	code, stderr = runRelock(t, "run", "-url", s.URL(), key, "sh", "-c", "exit 4")
	if code != 4 {
		t.Errorf("CMD with flags: exit code %d, want 4\nstderr:\n%s", code, stderr)
	}

	a, dir, _ := holder(t, s.URL(), key)
	for _, tt := range []struct {
		args []string
		want int
		min  time.Duration
	}{
		{[]string{"-n"}, exitNotObtained, 0},
		{[]string{"-n", "-E", "3"}, 3, 0},
		{[]string{"--conflict-exit-code", "0", "-n"}, 0, 0},
		{[]string{"-wait", "1"}, exitNotObtained, time.Second},
		{[]string{"-w", "0.3", "-E", "1"}, 1, 300 * time.Millisecond},
	} {
		start := time.Now()
		args := append(append([]string{"run", "-url", s.URL(), key}, tt.args...), "--", "sh", "-c", "exit 99")
		code, stderr := runRelock(t, args...)
		if code != tt.want || !strings.Contains(stderr, "not obtained") {
			t.Errorf("%q on a held lock: exit code %d, want %d\nstderr:\n%s", tt.args, code, tt.want, stderr)
		}
		if d := time.Since(start); d < tt.min {
			t.Errorf("%q gave up after %v, want at least %v", tt.args, d, tt.min)
		}
	}
	touch(t, filepath.Join(dir, "go"))
	if code := a.wait(20 * time.Second); code != 0 {
		t.Fatalf("holder: exit code %d\nstderr:\n%s", code, a.stderr.String())
	}
}

// TestHold checks relock hold: it prints the token, holds the lock until
// SIGTERM, releases it and exits 0.
func TestHold(t *testing.T) {
	t.Parallel() // a private server of its own; mostly waiting on timeouts
	s := testredis.Start(t)
	const key = "relock-cli:hold"
	out := filepath.Join(t.TempDir(), "token")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stderr bytes.Buffer
	cmd := exec.Command(relockBinary(t), "hold", key, "-url", s.URL(), "-ttl", "2s")
	cmd.Stdout, cmd.Stderr = f, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	token := strings.TrimSpace(waitFile(t, out, 20*time.Second, nil))
	if !relockToken(token) {
		t.Fatalf("relock hold printed %q, want a token", token)
	}
	if info := inspect(t, s, key); !info.Held || info.Token != token {
		t.Fatalf("while relock hold runs: %+v, want held by %s", info, token)
	}
	// Held past its TTL: refreshed.
	time.Sleep(3 * time.Second)
	if info := inspect(t, s, key); !info.Held || info.Token != token {
		t.Fatalf("after 1.5 TTL: %+v, want held by %s", info, token)
	}
	code, _, _ := relockOutput(t, "run", "-url", s.URL(), "-n", key, "--", "true")
	if code != exitNotObtained {
		t.Errorf("relock run -n while relock hold holds: exit code %d, want %d", code, exitNotObtained)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Errorf("relock hold after SIGTERM: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("relock hold still running 20 s after SIGTERM")
	}
	if info := inspect(t, s, key); info.Held {
		t.Errorf("after relock hold ended: %+v, want free", info)
	}
}

// TestStatusReleaseForeign checks status and release --force on a key that
// holds a value relock did not write.
func TestStatusReleaseForeign(t *testing.T) {
	s := testredis.Start(t)
	const key = "relock-cli:foreign"
	const value = "redsync-7f3a|not ours"
	if _, err := s.Do("SET", key, value, "PX", "60000"); err != nil {
		t.Fatal(err)
	}
	for _, driver := range wantAdapters {
		code, out, errOut := relockOutput(t, "status", key, "-json", "-driver", driver, "-url", s.URL())
		var st statusJSON
		if err := json.Unmarshal([]byte(out), &st); err != nil || code != exitOK {
			t.Fatalf("%s: status: exit code %d, %q (%v)\nstderr:\n%s", driver, code, out, err, errOut)
		}
		if !st.Held || !st.Foreign || st.Value != value || st.Token != "" || st.TTLms <= 0 {
			t.Errorf("%s: status -json: %+v, want held, foreign, value %q", driver, st, value)
		}
	}
	code, out, _ := relockOutput(t, "status", "-url", s.URL(), key)
	if code != exitOK || !strings.Contains(out, "relock did not write") || !strings.Contains(out, `"`+value+`"`) {
		t.Errorf("status: exit code %d\n%s", code, out)
	}
	for _, driver := range wantAdapters {
		// Set again, without a TTL, for the first driver too: the status
		// runs above took over the 60 s of the key's PX under -race on a
		// loaded 2-core machine (issue 19 item 4 load run: "not held;
		// nothing released").
		if _, err := s.Do("SET", key, value); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := relockOutput(t, "release", "--force", "-driver", driver, "-url", s.URL(), key)
		if code != exitOK || !strings.Contains(out, "released") {
			t.Errorf("%s: release --force: exit code %d\nstdout:\n%s\nstderr:\n%s", driver, code, out, errOut)
		}
		if n := redisInt(t, s, "EXISTS", key); n != 0 {
			t.Errorf("%s: key still there after release --force", driver)
		}
	}
	code, _, _ = relockOutput(t, "release", "--force", "-url", s.URL(), key)
	if code != exitNotRelease {
		t.Errorf("release --force of a free key: exit code %d, want %d", code, exitNotRelease)
	}
	// A token given: a foreign value is not that token.
	if _, err := s.Do("SET", key, value); err != nil {
		t.Fatal(err)
	}
	code, _, _ = relockOutput(t, "release", "--force", "-token", strings.Repeat("a", 32), "-url", s.URL(), key)
	if code != exitNotRelease || redisInt(t, s, "EXISTS", key) != 1 {
		t.Errorf("release --force -token on a foreign value: exit code %d, want %d and the key left", code, exitNotRelease)
	}
}

// TestVersion checks relock --version and its spellings.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "-version", "version"} {
		code, out, errOut := runForTest(t, arg)
		if code != exitOK || !strings.HasPrefix(out, "relock ") || !strings.Contains(out, "go1.") || errOut != "" {
			t.Errorf("relock %s: exit code %d, stdout %q, stderr %q", arg, code, out, errOut)
		}
	}
}

// TestParseFlags checks flags after KEY, "--", and -wait in seconds.
func TestParseFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		key  string
		argv []string
		wait time.Duration
	}{
		{[]string{"k", "-n", "true"}, "k", []string{"true"}, 0},
		{[]string{"-wait", "5", "k", "ls", "-l"}, "k", []string{"ls", "-l"}, 5 * time.Second},
		{[]string{"k", "-wait", "0.5", "--", "-cmd"}, "k", []string{"-cmd"}, 500 * time.Millisecond},
		{[]string{"k", "--", "ls", "-n"}, "k", []string{"ls", "-n"}, 0},
		{[]string{"-w", "2m", "--", "k", "x"}, "k", []string{"x"}, 2 * time.Minute},
		{[]string{"k", "-c", "echo hi"}, "k", []string{"/bin/sh", "-c", "echo hi"}, 0},
	} {
		cfg, err := parseRunFlags(tt.args, &bytes.Buffer{}, false)
		if err != nil || cfg.key != tt.key || !slicesEqual(cfg.argv, tt.argv) || cfg.wait != tt.wait {
			t.Errorf("parseRunFlags(%q) = key %q argv %q wait %v, %v; want %q %q %v", tt.args, cfg.key, cfg.argv, cfg.wait, err, tt.key, tt.argv, tt.wait)
		}
	}
}

func slicesEqual(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00") && len(a) == len(b)
}

// TestRunServerStopsAnsweringWhileWaiting freezes the server (SIGSTOP)
// while relock run -wait queues behind a holder: the wait ends, and relock
// must say 69 (Redis unavailable), not 75 (held), although no answer came
// to tell. With a core that reports ErrUnavailable this holds directly;
// before it, relock's last look at the key finds no answer.
func TestRunServerStopsAnsweringWhileWaiting(t *testing.T) {
	t.Parallel() // a private server of its own; mostly waiting on timeouts
	s := testredis.Start(t)
	const key = "relock-cli:frozen"
	holderProc, _, _ := holder(t, s.URL(), key, "-ttl", "30s")
	w := startRelock(t, "run", "-url", s.URL(), "-timeout", "1s", "-connect-timeout", "1s", "-wait", "3", key, "--", "true")
	deadline := time.Now().Add(20 * time.Second)
	for inspect(t, s, key).Waiters == 0 {
		if !w.running() || time.Now().After(deadline) {
			t.Fatalf("the waiter did not queue (running %v)\nstderr:\n%s", w.running(), w.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	thaw := adaptertest.Freeze(t, s)
	code := w.wait(30 * time.Second)
	thaw()
	t.Logf("relock run: exit %d: %s", code, w.stderr.String())
	if code != exitUnavailable {
		t.Errorf("exit code %d, want %d\nstderr:\n%s", code, exitUnavailable, w.stderr.String())
	}
	_ = holderProc.cmd.Process.Signal(syscall.SIGTERM)
	holderProc.wait(20 * time.Second)
}

// TestNoPermission checks exit status 77 (EX_NOPERM) when the server
// refuses the password, or the user may not touch the key (NOPERM),
// through every driver.
func TestNoPermission(t *testing.T) {
	s := testredis.Start(t)
	if _, err := s.Do("ACL", "SETUSER", "app", "on", ">right", "~app:*", "&app:*", "+@all"); err != nil {
		t.Fatal(err)
	}
	for _, driver := range wantAdapters {
		for _, url := range []string{"redis://app:wrong@" + s.Addr(), "redis://app:right@" + s.Addr()} {
			code, stderr, took := timedRelock(t, "run", "-driver", driver, "-url", url, "-n", "relock-cli:noperm", "--", "true")
			t.Logf("%s %s: exit %d after %v: %s", driver, redactURL(url), code, took.Round(time.Millisecond), stderr)
			if code != exitNoPermission || strings.Contains(stderr, "wrong") || strings.Contains(stderr, "right") {
				t.Errorf("%s %s: exit code %d, want %d (and no password on stderr)\nstderr:\n%s", driver, redactURL(url), code, exitNoPermission, stderr)
			}
		}
	}
}

// TestClassify checks how errors of Redis calls map to exit statuses,
// with relock's sentinels and without them (older cores, the CLI's own
// check).
func TestClassify(t *testing.T) {
	var c connFlags
	for _, tt := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("relock: obtain \"k\": %w: %w", relock.ErrUnavailable, context.DeadlineExceeded), exitUnavailable},
		{fmt.Errorf("x: %w", driver.ErrServerRefused), exitUnavailable},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, exitUnavailable},
		{fmt.Errorf("relock: inspect \"k\": %w", context.DeadlineExceeded), exitUnavailable},
		{fmt.Errorf("read: %w", io.EOF), exitUnavailable},
		{fmt.Errorf("x: %w", relock.ErrNoPermission), exitNoPermission},
		{errors.New("WRONGPASS invalid username-password pair"), exitNoPermission},
		{fmt.Errorf("x: %w", relock.ErrInvalidArgument), exitError},
		{fmt.Errorf("x: %w: %w", relock.ErrWrongType, io.EOF), exitError},
		{errors.New("ERR something else"), exitError},
	} {
		if got := c.classify(tt.err, false).code; got != tt.want {
			t.Errorf("classify(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// TestDSNTimeouts checks how -timeout and -connect-timeout reach each
// driver's URL: a flag given wins over the URL, the URL over a default.
func TestDSNTimeouts(t *testing.T) {
	parse := func(args ...string) connFlags {
		t.Helper()
		var c connFlags
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		c.register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		if err := c.check(fs); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-url", "redis://h:1/0"}, "redis://h:1/0?dial_timeout=2s&read_timeout=2s&write_timeout=2s"},
		{[]string{"-url", "redis://h:1?dial_timeout=9s", "-timeout", "500ms"}, "redis://h:1?dial_timeout=9s&read_timeout=500ms&write_timeout=500ms"},
		{[]string{"-url", "redis://h:1?dial_timeout=9s", "-connect-timeout", "1s"}, "redis://h:1?dial_timeout=1s&read_timeout=2s&write_timeout=2s"},
		{[]string{"-driver", "rueidis", "-url", "rediss://u:p@h:1?addr=h:2"}, "rediss://u:p@h:1?addr=h%3A2&dial_timeout=2s&write_timeout=2s"},
		{[]string{"-driver", "redigo", "-url", "redis://h:1", "-timeout", "3s"}, "redis://h:1?dial_timeout=2s&read_timeout=3s&write_timeout=3s"},
	} {
		c := parse(tt.args...)
		if got := c.dsn(); got != tt.want {
			t.Errorf("%q: dsn %q, want %q", tt.args, got, tt.want)
		}
	}
}
