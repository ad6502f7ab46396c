//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/relock-go/relock/internal/testkit/testredis"
)

// The tests of "relock run" build the binary and run it as a user would,
// against a private redis-server each (its fencing counters never expire,
// so they stay off the shared server). A few run it in-process against
// miniredis, so that they also run under the race detector and on machines
// without Redis.

var (
	buildDir  string // where TestMain lets the binary be built
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// startBuild builds the binary in the background, from TestMain, so that
// the link (seconds, more with -race on a loaded machine) overlaps the
// in-process tests instead of being counted in the first timed run: it
// made TestUnavailable/defaults take 7-12 s here against 3 s by hand.
func startBuild() {
	go buildOnce.Do(build)
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "relock-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	startBuild()
	code := m.Run()
	buildOnce.Do(func() {}) // the build has ended: dir can go
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// relockBinary builds cmd/relock once per test run and returns its path.
func relockBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(build)
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

func build() {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	bin := filepath.Join(buildDir, "relock")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	// The output goes to a file, so that no goroutine copies it: the only
	// goroutine of a build still running is the one under build, which
	// ignoreBuild lets goleak ignore.
	out, err := os.CreateTemp(buildDir, "build-output-")
	if err != nil {
		buildErr = err
		return
	}
	defer out.Close()
	cmd := exec.Command(goTool, append(args, ".")...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		buildErr = fmt.Errorf("go build: %v\n%s", err, b)
		return
	}
	buildBin = bin
}

// ignoreBuild is for goleak: the background build may still run.
var ignoreBuild = goleak.IgnoreAnyFunction("github.com/relock-go/relock/cmd/relock.build")

// proc is one relock process that a test started.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	code   int
	ended  time.Time
}

// startRelock starts the relock binary with args. The process is killed if
// it is still running when the test ends; every wait is bounded.
func startRelock(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(relockBinary(t), args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	// A process CMD left behind may hold the output pipes open: do not
	// wait for it once relock has exited.
	p.cmd.WaitDelay = 2 * time.Second
	p.cmd.Env = append(os.Environ(), "REDIS_URL=redis://127.0.0.1:1") // -url must win
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start relock: %v", err)
	}
	go func() {
		defer close(p.done)
		err := p.cmd.Wait()
		p.ended = time.Now()
		p.code = p.cmd.ProcessState.ExitCode()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
				p.code = 128 + int(ws.Signal())
			}
		}
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits at most limit for the process to end and returns its exit
// code.
func (p *proc) wait(limit time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(limit):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("relock %q still running after %v\nstderr:\n%s", p.cmd.Args[1:], limit, p.stderr.String())
		return 0
	}
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// runRelock runs relock to its end, at most 30 s.
func runRelock(t *testing.T, args ...string) (code int, stderr string) {
	t.Helper()
	p := startRelock(t, args...)
	code = p.wait(30 * time.Second)
	return code, p.stderr.String()
}

// waitFile waits until path exists and is not empty, at most limit, and
// returns its content; p, if not nil, must still be running meanwhile.
func waitFile(t *testing.T, path string, limit time.Duration, p *proc) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return string(b)
		}
		if p != nil && !p.running() {
			t.Fatalf("relock ended (exit %d) before %s appeared\nstderr:\n%s", p.code, path, p.stderr.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %v", path, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("go\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func redisInt(t *testing.T, s *testredis.Server, args ...string) int64 {
	t.Helper()
	v, err := s.Do(args...)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	n, ok := v.(int64)
	if !ok {
		t.Fatalf("%v: reply %#v, want an integer", args, v)
	}
	return n
}

// holdScript is a CMD that writes its environment to dir/env, then runs
// until dir/go exists.
const holdScript = `printf '%s\n%s\n%s\n%s\n' "$RELOCK_KEY" "$RELOCK_TOKEN" "${RELOCK_FENCE-unset}" "$$" > "$0/env.tmp" && mv "$0/env.tmp" "$0/env"
while [ ! -e "$0/go" ]; do sleep 0.02; done`

// holder starts relock holding key with holdScript, waits until CMD runs,
// and returns the process and the lines of CMD's environment file: key,
// token, fence, pid.
func holder(t *testing.T, url, key string, flags ...string) (p *proc, dir string, env []string) {
	t.Helper()
	dir = t.TempDir()
	args := append([]string{"run", "-url", url}, flags...)
	p = startRelock(t, append(args, key, "--", "sh", "-c", holdScript, dir)...)
	env = strings.Split(strings.TrimSpace(waitFile(t, filepath.Join(dir, "env"), 20*time.Second, p)), "\n")
	if len(env) != 4 {
		t.Fatalf("CMD's environment file: %q", env)
	}
	return p, dir, env
}

func TestRunExitStatusPassesThrough(t *testing.T) {
	s := testredis.Start(t)
	for _, driver := range wantAdapters {
		t.Run(driver, func(t *testing.T) {
			key := "relock-cli:exit:" + driver
			code, stderr := runRelock(t, "run", "-url", s.URL(), "-driver", driver, key, "--", "sh", "-c", "exit 7")
			if code != 7 {
				t.Errorf("exit code %d, want CMD's 7\nstderr:\n%s", code, stderr)
			}
			if n := redisInt(t, s, "EXISTS", key); n != 0 {
				t.Errorf("the lock key is still there after relock ended")
			}
		})
	}
	t.Run("KilledBySignal", func(t *testing.T) {
		code, stderr := runRelock(t, "run", "-url", s.URL(), "relock-cli:exit:sig", "--", "sh", "-c", "kill -KILL $$")
		if code != 128+int(syscall.SIGKILL) {
			t.Errorf("exit code %d, want 137 (killed by SIGKILL)\nstderr:\n%s", code, stderr)
		}
	})
	t.Run("WithoutDashDash", func(t *testing.T) {
		code, stderr := runRelock(t, "run", "-url", s.URL(), "relock-cli:exit:nodash", "sh", "-c", "exit 0")
		if code != 0 {
			t.Errorf("exit code %d, want 0\nstderr:\n%s", code, stderr)
		}
	})
}

// TestRunEnvironment checks RELOCK_KEY, RELOCK_TOKEN and RELOCK_FENCE:
// the token is what the key holds while CMD runs, and the fence strictly
// increases from one holder to the next.
func TestRunEnvironment(t *testing.T) {
	s := testredis.Start(t)
	const key = "relock-cli:env"
	var fences []int64
	for range 3 {
		p, dir, env := holder(t, s.URL(), key)
		if env[0] != key {
			t.Errorf("RELOCK_KEY = %q, want %q", env[0], key)
		}
		if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(env[1]) {
			t.Errorf("RELOCK_TOKEN = %q, want 32 hex digits", env[1])
		}
		if v, err := s.Do("GET", key); err != nil || heldToken(v) != env[1] {
			t.Errorf("GET %s = %#v, %v while CMD runs; want RELOCK_TOKEN %q", key, v, err, env[1])
		}
		fence, err := strconv.ParseInt(env[2], 10, 64)
		if err != nil {
			t.Fatalf("RELOCK_FENCE = %q, want a number", env[2])
		}
		fences = append(fences, fence)
		touch(t, filepath.Join(dir, "go"))
		if code := p.wait(20 * time.Second); code != 0 {
			t.Fatalf("exit code %d, want 0\nstderr:\n%s", code, p.stderr.String())
		}
	}
	for i := 1; i < len(fences); i++ {
		if fences[i] <= fences[i-1] {
			t.Errorf("fences %v do not strictly increase", fences)
		}
	}

	p, dir, env := holder(t, s.URL(), key, "-fence=false")
	if env[2] != "unset" {
		t.Errorf("RELOCK_FENCE = %q with -fence=false, want it unset", env[2])
	}
	touch(t, filepath.Join(dir, "go"))
	if code := p.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0\nstderr:\n%s", code, p.stderr.String())
	}
}

// overlapScript appends a start and an end line, with the fence and a
// nanosecond timestamp, around a short sleep: one critical section.
const overlapScript = `echo "start $RELOCK_FENCE $(date +%s%N)" >> "$0"; sleep 0.1; echo "end $RELOCK_FENCE $(date +%s%N)" >> "$0"`

// TestRunNoOverlap runs three relock processes at once on one key, twice
// each, per driver: the critical sections they log must never interleave,
// and the fences must strictly increase.
func TestRunNoOverlap(t *testing.T) {
	t.Parallel() // a private server of its own; mostly waiting on timeouts
	s := testredis.Start(t)
	const procs, rounds = 3, 2
	for _, driver := range wantAdapters {
		t.Run(driver, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "log")
			key := "relock-cli:overlap:" + driver
			var wg sync.WaitGroup
			codes := make([]int, procs*rounds)
			stderrs := make([]string, procs*rounds)
			for i := range procs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for r := range rounds {
						p := startRelock(t, "run", "-url", s.URL(), "-driver", driver, "-ttl", "5s", key, "--", "sh", "-c", overlapScript, log)
						select {
						case <-p.done:
						case <-time.After(60 * time.Second):
						}
						if p.running() {
							_ = p.cmd.Process.Kill()
							<-p.done
							p.code = -1
						}
						codes[i*rounds+r], stderrs[i*rounds+r] = p.code, p.stderr.String()
					}
				}()
			}
			wg.Wait()
			for i, c := range codes {
				if c != 0 {
					t.Errorf("relock #%d: exit code %d (-1: hung), want 0\nstderr:\n%s", i, c, stderrs[i])
				}
			}
			checkSections(t, log, procs*rounds)
		})
	}
}

// checkSections reads the log written by overlapScript and checks that it
// holds n sections, each "start F T" followed by "end F T'" with the same
// fence, fences strictly increasing, each start no earlier than the
// previous end.
func checkSections(t *testing.T, log string, n int) {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2*n {
		t.Fatalf("%d log lines, want %d:\n%s", len(lines), 2*n, b)
	}
	var lastFence, lastEnd int64 = -1 << 62, 0
	for i := 0; i < len(lines); i += 2 {
		var f1, f2, t1, t2 int64
		var w1, w2 string
		if _, err := fmt.Sscan(lines[i], &w1, &f1, &t1); err != nil || w1 != "start" {
			t.Fatalf("line %d %q: want start FENCE TIME (interleaved?)\n%s", i+1, lines[i], b)
		}
		if _, err := fmt.Sscan(lines[i+1], &w2, &f2, &t2); err != nil || w2 != "end" || f2 != f1 {
			t.Fatalf("line %d %q: want end %d TIME: sections interleave\n%s", i+2, lines[i+1], f1, b)
		}
		if f1 <= lastFence {
			t.Errorf("line %d: fence %d after %d: not strictly increasing", i+1, f1, lastFence)
		}
		if t1 < lastEnd {
			t.Errorf("line %d: section starts at %d, before the previous one ended at %d", i+1, t1, lastEnd)
		}
		lastFence, lastEnd = f1, t2
	}
}

// TestRunHolderKilled kills a holding relock with SIGKILL: its CMD dies
// with it (the parent-death signal), the lock stays until its TTL runs out,
// and a waiting relock gets in then.
func TestRunHolderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a lock TTL to run out")
	}
	s := testredis.Start(t)
	const key, ttl = "relock-cli:killed", 2 * time.Second
	a, _, env := holder(t, s.URL(), key, "-ttl", ttl.String())
	cmdPID, err := strconv.Atoi(env[3])
	if err != nil {
		t.Fatalf("CMD's pid %q", env[3])
	}
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.wait(10 * time.Second)
	killed := time.Now()
	if pttl := redisInt(t, s, "PTTL", key); pttl <= 0 {
		t.Errorf("PTTL %d right after the holder was killed: want the lock to stay until its TTL", pttl)
	}

	// The next holder gets in once the TTL has run out.
	log := filepath.Join(t.TempDir(), "next")
	b := startRelock(t, "run", "-url", s.URL(), "-wait", "30s", key, "--", "sh", "-c", `echo in > "$0"`, log)
	if code := b.wait(30 * time.Second); code != 0 {
		t.Fatalf("next relock: exit code %d, want 0\nstderr:\n%s", code, b.stderr.String())
	}
	if d := b.ended.Sub(killed); d > ttl+10*time.Second {
		t.Errorf("the next holder got in %v after the kill; the TTL is %v", d, ttl)
	}
	waitFile(t, log, time.Second, nil)

	// CMD of the killed relock got SIGKILL from the kernel.
	deadline := time.Now().Add(10 * time.Second)
	for alive(cmdPID) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(cmdPID, syscall.SIGKILL)
			t.Fatalf("CMD (pid %d) of the killed relock still runs", cmdPID)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// TestRunLockLost deletes the lock key behind a running CMD: relock stops
// CMD with -kill-signal, or SIGKILL after -grace, and exits 122 whatever
// CMD's own status.
func TestRunLockLost(t *testing.T) {
	t.Parallel() // a private server of its own; mostly waiting on timeouts
	s := testredis.Start(t)
	tests := []struct {
		name      string
		flags     []string
		script    string // writes "ready" in $0/ready once its traps are set
		wantLog   string // in $0/log afterwards
		minToStop time.Duration
	}{
		{
			name:    "SIGTERM",
			script:  `trap 'echo TERM > "$0/log"; exit 0' TERM; echo ready > "$0/ready"; while :; do sleep 0.02; done`,
			wantLog: "TERM",
		},
		{
			name:    "KillSignalINT",
			flags:   []string{"-kill-signal", "INT"},
			script:  `trap 'echo INT > "$0/log"; exit 0' INT; echo ready > "$0/ready"; while :; do sleep 0.02; done`,
			wantLog: "INT",
		},
		{
			// CMD exits on SIGTERM, but leaves a process behind that
			// ignores it: that one gets SIGKILL after -grace.
			name:      "LeftoverKilledAfterGrace",
			flags:     []string{"-grace", "700ms"},
			script:    `sh -c 'trap "" TERM; echo $$ > "$0/child"; exec sleep 60' "$0" & trap 'echo TERM > "$0/log"; exit 0' TERM; echo ready > "$0/ready"; wait`,
			wantLog:   "TERM",
			minToStop: 700 * time.Millisecond,
		},
		{
			name:      "SIGKILLAfterGrace",
			flags:     []string{"-grace", "700ms"},
			script:    `trap '' TERM; echo ready > "$0/ready"; while :; do sleep 0.02; done`,
			minToStop: 700 * time.Millisecond,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "relock-cli:lost:" + tt.name
			dir := t.TempDir()
			args := append([]string{"run", "-url", s.URL(), "-ttl", "900ms"}, tt.flags...)
			p := startRelock(t, append(args, key, "--", "sh", "-c", tt.script, dir)...)
			waitFile(t, filepath.Join(dir, "ready"), 20*time.Second, p)
			if n := redisInt(t, s, "DEL", key); n != 1 {
				t.Fatalf("DEL %s = %d, want 1", key, n)
			}
			deleted := time.Now()
			code := p.wait(20 * time.Second)
			if code != exitLost {
				t.Errorf("exit code %d, want %d (lost)\nstderr:\n%s", code, exitLost, p.stderr.String())
			}
			if !strings.Contains(p.stderr.String(), "lost") {
				t.Errorf("stderr does not say the lock was lost:\n%s", p.stderr.String())
			}
			if tt.wantLog != "" {
				if got := strings.TrimSpace(waitFile(t, filepath.Join(dir, "log"), time.Second, nil)); got != tt.wantLog {
					t.Errorf("CMD's trap logged %q, want %q", got, tt.wantLog)
				}
			}
			if d := p.ended.Sub(deleted); d < tt.minToStop {
				t.Errorf("relock ended %v after the key was deleted; -grace should have kept CMD %v", d, tt.minToStop)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "child")); err == nil {
				pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
				if pid > 0 && alive(pid) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					t.Errorf("a process CMD left behind (pid %d) still runs after relock ended", pid)
				}
			}
		})
	}
}

// TestRunNonblock checks -n and -wait against a held lock.
func TestRunNonblock(t *testing.T) {
	s := testredis.Start(t)
	const key = "relock-cli:nonblock"
	a, dir, _ := holder(t, s.URL(), key)

	start := time.Now()
	code, stderr := runRelock(t, "run", "-url", s.URL(), "-n", key, "--", "true")
	if code != exitNotObtained {
		t.Errorf("-n on a held lock: exit code %d, want %d\nstderr:\n%s", code, exitNotObtained, stderr)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("-n took %v: it must not wait", d)
	}
	code, stderr = runRelock(t, "run", "-url", s.URL(), "--nonblock", key, "--", "true")
	if code != exitNotObtained {
		t.Errorf("--nonblock on a held lock: exit code %d, want %d\nstderr:\n%s", code, exitNotObtained, stderr)
	}

	start = time.Now()
	code, stderr = runRelock(t, "run", "-url", s.URL(), "-wait", "300ms", key, "--", "true")
	if code != exitNotObtained {
		t.Errorf("-wait 300ms on a held lock: exit code %d, want %d\nstderr:\n%s", code, exitNotObtained, stderr)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("-wait 300ms gave up after %v", d)
	}

	touch(t, filepath.Join(dir, "go"))
	if code := a.wait(20 * time.Second); code != 0 {
		t.Fatalf("holder: exit code %d\nstderr:\n%s", code, a.stderr.String())
	}
	if code, stderr := runRelock(t, "run", "-url", s.URL(), "-n", key, "--", "true"); code != 0 {
		t.Errorf("-n on a free lock: exit code %d, want 0\nstderr:\n%s", code, stderr)
	}
}

// TestRunForwardsSignals sends SIGTERM, SIGINT and SIGHUP to relock while
// CMD runs: CMD gets it, and relock exits with CMD's status and releases.
func TestRunForwardsSignals(t *testing.T) {
	s := testredis.Start(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		name := strings.TrimPrefix(sigName(sig), "SIG")
		t.Run(name, func(t *testing.T) {
			key := "relock-cli:signal:" + name
			dir := t.TempDir()
			script := fmt.Sprintf(`trap 'echo %s > "$0/log"; exit 3' %s; echo ready > "$0/ready"; while :; do sleep 0.02; done`, name, name)
			p := startRelock(t, "run", "-url", s.URL(), key, "--", "sh", "-c", script, dir)
			waitFile(t, filepath.Join(dir, "ready"), 20*time.Second, p)
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(20 * time.Second); code != 3 {
				t.Errorf("exit code %d, want CMD's 3\nstderr:\n%s", code, p.stderr.String())
			}
			if got := strings.TrimSpace(waitFile(t, filepath.Join(dir, "log"), time.Second, nil)); got != name {
				t.Errorf("CMD's trap logged %q, want %q", got, name)
			}
			if n := redisInt(t, s, "EXISTS", key); n != 0 {
				t.Errorf("the lock key is still there after relock ended")
			}
		})
	}

	// A signal while relock waits ends the wait: CMD never runs.
	t.Run("WhileWaiting", func(t *testing.T) {
		const key = "relock-cli:signal:waiting"
		a, dir, _ := holder(t, s.URL(), key)
		ran := filepath.Join(t.TempDir(), "ran")
		b := startRelock(t, "run", "-url", s.URL(), key, "--", "sh", "-c", `echo ran > "$0"`, ran)
		time.Sleep(300 * time.Millisecond) // let it start waiting; an earlier signal ends it the same way
		if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := b.wait(20 * time.Second); code != 128+int(syscall.SIGTERM) {
			t.Errorf("exit code %d, want 143\nstderr:\n%s", code, b.stderr.String())
		}
		if _, err := os.Stat(ran); err == nil {
			t.Errorf("CMD ran although relock was interrupted while waiting")
		}
		touch(t, filepath.Join(dir, "go"))
		if code := a.wait(20 * time.Second); code != 0 {
			t.Errorf("holder: exit code %d\nstderr:\n%s", code, a.stderr.String())
		}
	})
}

func sigName(s syscall.Signal) string {
	return map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGINT: "SIGINT", syscall.SIGHUP: "SIGHUP"}[s]
}

// TestRunCannotRunCommand checks 127 and 126, as shells report them, and
// that the lock is released.
func TestRunCannotRunCommand(t *testing.T) {
	s := testredis.Start(t)
	notExec := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		cmd  string
		want int
	}{
		{"relock-no-such-command", exitNotFound},
		{"/no/such/dir/cmd", exitNotFound},
		{notExec, exitCannotRun},
	} {
		key := "relock-cli:cannot:" + strconv.Itoa(tt.want)
		code, stderr := runRelock(t, "run", "-url", s.URL(), key, "--", tt.cmd)
		if code != tt.want {
			t.Errorf("CMD %s: exit code %d, want %d\nstderr:\n%s", tt.cmd, code, tt.want, stderr)
		}
		if n := redisInt(t, s, "EXISTS", key); n != 0 {
			t.Errorf("CMD %s: the lock key is still there after relock ended", tt.cmd)
		}
	}
}

// TestRunRedisDown checks the exit status when nothing listens: 69
// (EX_UNAVAILABLE), not relock's generic 125 nor 75 "held".
func TestRunRedisDown(t *testing.T) {
	mr := miniredis.RunT(t)
	addr := mr.Addr()
	mr.Close()
	for _, driver := range wantAdapters {
		code, stderr := runRelock(t, "run", "-url", "redis://"+addr, "-driver", driver, "-n", "relock-cli:down", "--", "true")
		if code != exitUnavailable {
			t.Errorf("%s: exit code %d, want %d\nstderr:\n%s", driver, code, exitUnavailable, stderr)
		}
	}
}

// TestRunURLFromEnvironment checks that $REDIS_URL is the default server.
func TestRunURLFromEnvironment(t *testing.T) {
	s := testredis.Start(t)
	p := &proc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(relockBinary(t), "run", "relock-cli:env-url", "--", "sh", "-c", "exit 5")
	p.cmd.Env = append(os.Environ(), "REDIS_URL="+s.URL())
	p.cmd.Stderr = &p.stderr
	err := p.cmd.Run()
	if code := p.cmd.ProcessState.ExitCode(); code != 5 {
		t.Errorf("exit code %d (%v), want 5\nstderr:\n%s", code, err, p.stderr.String())
	}
}

// TestRunInProcess runs "relock run" through run() against miniredis, so
// that the race detector sees its goroutines and machines without Redis run
// it too.
func TestRunInProcess(t *testing.T) {
	defer goleak.VerifyNone(t, ignoreBuild)
	mr, err := miniredis.Run()
	if err != nil {
		t.Fatal(err)
	}
	defer mr.Close() // before goleak looks
	url := "redis://" + mr.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("ExitStatus", func(t *testing.T) {
		var stderr bytes.Buffer
		if code := run(ctx, []string{"run", "-url", url, "k1", "--", "sh", "-c", "exit 4"}, &stderr, &stderr); code != 4 {
			t.Errorf("exit code %d, want 4\n%s", code, stderr.String())
		}
		if mr.Exists("k1") {
			t.Errorf("lock key left behind")
		}
	})
	t.Run("Lost", func(t *testing.T) {
		dir := t.TempDir()
		go func() {
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
					mr.Del("k2")
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		var stderr bytes.Buffer
		code := run(ctx, []string{"run", "-url", url, "-ttl", "600ms", "k2", "--", "sh", "-c",
			`echo > "$0/ready"; exec sleep 30`, dir}, &stderr, &stderr)
		if code != exitLost {
			t.Errorf("exit code %d, want %d\n%s", code, exitLost, stderr.String())
		}
	})
	t.Run("Cancelled", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		defer ccancel()
		dir := t.TempDir()
		go func() {
			for cctx.Err() == nil {
				if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
					ccancel()
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		var stderr bytes.Buffer
		code := run(cctx, []string{"run", "-url", url, "k3", "--", "sh", "-c", `echo > "$0/ready"; exec sleep 30`, dir}, &stderr, &stderr)
		if code != 128+int(syscall.SIGTERM) {
			t.Errorf("exit code %d, want 143 (CMD got SIGTERM)\n%s", code, stderr.String())
		}
		if mr.Exists("k3") {
			t.Errorf("lock key left behind")
		}
	})
}

func TestRunUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want int
		says string // in stderr
	}{
		{[]string{"run", "-h"}, exitOK, "Exit status"},
		{[]string{"run"}, exitError, "missing KEY"},
		{[]string{"run", "k"}, exitError, "missing CMD"},
		{[]string{"run", "k", "--"}, exitError, "missing CMD"},
		{[]string{"run", "", "true"}, exitError, "empty KEY"},
		{[]string{"run", "k", "-bogus", "true"}, exitError, "flag provided but not defined: -bogus (relock run -h lists the flags)"},
		{[]string{"run", "-wait", "soon", "k", "true"}, exitError, "want seconds"},
		{[]string{"run", "-E", "256", "k", "true"}, exitError, "-E 256"},
		{[]string{"run", "-c", "true", "k", "true"}, exitError, "-c and CMD"},
		{[]string{"run", "-timeout", "0s", "k", "true"}, exitError, "-timeout"},
		{[]string{"hold", "k", "true"}, exitError, "runs no command"},
		{[]string{"hold"}, exitError, "missing KEY"},
		{[]string{"run", "-n", "-wait", "1s", "k", "true"}, exitError, "-n and -wait"},
		{[]string{"run", "-ttl", "0s", "k", "true"}, exitError, "-ttl"},
		{[]string{"run", "-wait", "-1s", "k", "true"}, exitError, "-wait"},
		{[]string{"run", "-grace", "-1s", "k", "true"}, exitError, "-grace"},
		{[]string{"run", "-kill-signal", "BOGUS", "k", "true"}, exitError, "unknown signal"},
		{[]string{"run", "-kill-signal", "0", "k", "true"}, exitError, "no signal"},
		{[]string{"run", "-driver", "nosuch", "k", "true"}, exitError, "unknown driver"},
		{[]string{"run", "-driver", "redigo", "-url", "redis://127.0.0.1:1?addr=127.0.0.1:2", "k", "true"}, exitError, "connect to"},
		{[]string{"run", "-url", "http://user:s3cret@example.com", "k", "true"}, exitError, "connect to"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, &stdout, &stderr)
		if code != tt.want || !strings.Contains(stderr.String(), tt.says) {
			t.Errorf("run(%q) = %d, want %d with %q on stderr\nstderr:\n%s", tt.args, code, tt.want, tt.says, stderr.String())
		}
		if strings.Contains(stderr.String(), "s3cret") {
			t.Errorf("run(%q): stderr shows the URL's password:\n%s", tt.args, stderr.String())
		}
		if n := strings.Count(stderr.String(), "\n"); code != exitOK && n != 1 {
			t.Errorf("run(%q): %d lines on stderr, want one line, no usage:\n%s", tt.args, n, stderr.String())
		}
	}
}

func TestSignalFlag(t *testing.T) {
	for in, want := range map[string]syscall.Signal{
		"TERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT, "hup": syscall.SIGHUP, "9": syscall.SIGKILL, "SIGUSR1": syscall.SIGUSR1,
	} {
		var f signalFlag
		if err := f.Set(in); err != nil || f.sig != want {
			t.Errorf("Set(%q) = %v, %v; want %v", in, f.sig, err, want)
		}
	}
}

func TestTopLevelUsageListsExitCodes(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit code %d", code)
	}
	for _, code := range []int{exitNotObtained, exitLost, exitError} {
		if !regexp.MustCompile(`(?m)^\s+` + strconv.Itoa(code) + `\s`).MatchString(stdout.String()) {
			t.Errorf("relock -h does not list exit code %d:\n%s", code, stdout.String())
		}
	}
}

// TestRunClusterAndSentinelURLs runs relock through -driver goredis and
// rueidis with the cluster and Sentinel URL forms that "relock run -h"
// documents.
func TestRunClusterAndSentinelURLs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 6-node cluster and a Sentinel set-up")
	}
	drivers := []string{"goredis", "rueidis"}
	t.Run("Cluster", func(t *testing.T) {
		c := testredis.StartCluster(t)
		addrs := c.Addrs()
		url := "redis://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2]
		for _, driver := range drivers {
			var fences []int64
			for _, key := range []string{"relock-cli:cluster:" + driver, "relock-cli:cluster:" + driver, "{relock-cli}:tagged:" + driver} {
				p, dir, env := holder(t, url, key, "-driver", driver)
				primary := c.PrimaryFor(key)
				if v, err := primary.Do("GET", key); err != nil || heldToken(v) != env[1] {
					t.Errorf("%s: GET %s on its primary = %#v, %v; want RELOCK_TOKEN %q", driver, key, v, err, env[1])
				}
				if !strings.HasPrefix(key, "{") {
					f, err := strconv.ParseInt(env[2], 10, 64)
					if err != nil {
						t.Fatalf("%s: RELOCK_FENCE %q", driver, env[2])
					}
					fences = append(fences, f)
				}
				touch(t, filepath.Join(dir, "go"))
				if code := p.wait(20 * time.Second); code != 0 {
					t.Fatalf("%s: %s: exit code %d\nstderr:\n%s", driver, key, code, p.stderr.String())
				}
			}
			if len(fences) != 2 || fences[1] <= fences[0] {
				t.Errorf("%s: fences %v do not strictly increase", driver, fences)
			}
		}
	})
	t.Run("Sentinel", func(t *testing.T) {
		s := testredis.StartSentinel(t)
		sa := s.SentinelAddrs()
		url := "redis://" + sa[0] + "?master_name=" + s.MasterName() + "&addr=" + sa[1]
		for _, driver := range drivers {
			key := "relock-cli:sentinel:" + driver
			p, dir, env := holder(t, url, key, "-driver", driver)
			if v, err := s.Primary().Do("GET", key); err != nil || heldToken(v) != env[1] {
				t.Errorf("%s: GET %s on the primary = %#v, %v; want RELOCK_TOKEN %q", driver, key, v, err, env[1])
			}
			touch(t, filepath.Join(dir, "go"))
			if code := p.wait(20 * time.Second); code != 0 {
				t.Fatalf("%s: exit code %d\nstderr:\n%s", driver, code, p.stderr.String())
			}
		}
	})
}

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	t.Cleanup(func() { _ = master.Close() })
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	t.Cleanup(func() { _ = tty.Close() })
	return master, tty
}

// TestRunTerminal runs relock as a shell runs a foreground job: in a
// session whose controlling terminal is a pty. CMD must get the terminal:
// it can read from it (a background process group would be stopped by
// SIGTTIN), and Ctrl-C reaches it. Ctrl-Z stops CMD, and relock with it
// (so that a shell would see the job stopped); continuing relock continues
// CMD, in the terminal's foreground again.
func TestRunTerminal(t *testing.T) {
	s := testredis.Start(t)
	master, tty := openPTY(t)
	// Drain what the terminal echoes, so that it never blocks.
	go func() { _, _ = io.Copy(io.Discard, master) }()

	dir := t.TempDir()
	// No fork after ready: a Ctrl-Z that catches sh in vfork stops only
	// the child, and relock waits for sh.
	script := `read line; echo "$line" > "$0/read"; trap 'echo INT > "$0/log"; exit 3' INT; echo $$ > "$0/pid"; echo ready > "$0/ready"; read never`
	p := &proc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(relockBinary(t), "run", "-url", s.URL(), "relock-cli:tty", "--", "sh", "-c", script, dir)
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = tty, tty, &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})

	if _, err := master.WriteString("hello from the terminal\n"); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(waitFile(t, filepath.Join(dir, "read"), 20*time.Second, p)); got != "hello from the terminal" {
		t.Errorf("CMD read %q from the terminal", got)
	}
	waitFile(t, filepath.Join(dir, "ready"), 20*time.Second, p)
	cmdPID, err := strconv.Atoi(strings.TrimSpace(waitFile(t, filepath.Join(dir, "pid"), time.Second, nil)))
	if err != nil {
		t.Fatal(err)
	}

	if _, err := master.Write([]byte{26}); err != nil { // Ctrl-Z
		t.Fatal(err)
	}
	waitState(t, p.cmd.Process.Pid, "relock", true)
	waitState(t, cmdPID, "CMD", true)
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil { // as fg does
		t.Fatal(err)
	}
	waitState(t, cmdPID, "CMD", false)

	// Ctrl-C. After SIGCONT, relock gives the terminal back to CMD's
	// group asynchronously; on a loaded machine a first Ctrl-C may come
	// before that, so it is typed again until CMD's trap fires.
	for i := 0; i < 10 && p.running(); i++ {
		if _, err := master.Write([]byte{3}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.done:
		case <-time.After(2 * time.Second):
		}
	}
	if code := p.wait(20 * time.Second); code != 3 {
		t.Errorf("exit code %d, want CMD's 3 (its Ctrl-C trap)\nstderr:\n%s", code, p.stderr.String())
	}
	if got := strings.TrimSpace(waitFile(t, filepath.Join(dir, "log"), time.Second, nil)); got != "INT" {
		t.Errorf("CMD's trap logged %q, want INT", got)
	}
}

// TestRunRedisGoneWhileRunning stops the server under a running CMD: the
// failing refreshes are reported, and when the lock's validity runs out
// relock stops CMD and exits 122.
func TestRunRedisGoneWhileRunning(t *testing.T) {
	s := testredis.Start(t)
	dir := t.TempDir()
	p := startRelock(t, "run", "-url", s.URL(), "-ttl", "1s", "relock-cli:gone", "--", "sh", "-c",
		`trap 'echo TERM > "$0/log"; exit 0' TERM; echo ready > "$0/ready"; while :; do sleep 0.02; done`, dir)
	waitFile(t, filepath.Join(dir, "ready"), 20*time.Second, p)
	s.Stop()
	stopped := time.Now()
	code := p.wait(20 * time.Second)
	t.Logf("relock ended %v after the server stopped; stderr:\n%s", p.ended.Sub(stopped).Round(time.Millisecond), p.stderr.String())
	if code != exitLost {
		t.Errorf("exit code %d, want %d (lost)\nstderr:\n%s", code, exitLost, p.stderr.String())
	}
	if got := strings.TrimSpace(waitFile(t, filepath.Join(dir, "log"), time.Second, nil)); got != "TERM" {
		t.Errorf("CMD's trap logged %q, want TERM", got)
	}
	if !strings.Contains(p.stderr.String(), "refresh of \"relock-cli:gone\" failed") {
		t.Errorf("stderr does not report the failed refreshes:\n%s", p.stderr.String())
	}
}

// waitState waits, at most 10 s, until the process is stopped (state T),
// or no longer stopped.
func waitState(t *testing.T, pid int, what string, stopped bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatalf("%s (pid %d) is gone: %v", what, pid, err)
		}
		st := string(b)
		i := strings.LastIndexByte(st, ')')
		if i >= 0 && i+2 < len(st) && (st[i+2] == 'T') == stopped {
			return
		}
		if time.Now().After(deadline) {
			out, _ := exec.Command("ps", "-o", "pid,ppid,pgid,tpgid,stat,wchan:30,args", "-s", strconv.Itoa(pid)).CombinedOutput()
			t.Logf("%s", out)
			t.Fatalf("%s (pid %d): state %q after 10 s, want stopped=%v", what, pid, st[i+2:i+3], stopped)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// heldToken returns the token in a lock key's value, which is the token
// followed by "|" and the metadata (relock.WithMetadata).
func heldToken(value any) string {
	s, _ := value.(string)
	token, _, _ := strings.Cut(s, "|")
	return token
}

// TestRunTerminalOnStdout runs relock with stdin from /dev/null but stdout
// on the terminal, as "relock run ... < file" from a shell: CMD still gets
// the terminal, and can read /dev/tty.
func TestRunTerminalOnStdout(t *testing.T) {
	s := testredis.Start(t)
	master, tty := openPTY(t)
	go func() { _, _ = io.Copy(io.Discard, master) }()
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()

	dir := t.TempDir()
	p := &proc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(relockBinary(t), "run", "-url", s.URL(), "relock-cli:tty-stdout", "--", "sh", "-c",
		`read line < /dev/tty; echo "$line" > "$0/read"`, dir)
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = devNull, tty, &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 1}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	time.Sleep(100 * time.Millisecond) // a line typed before CMD reads waits in the terminal's buffer anyway
	if _, err := master.WriteString("typed\n"); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0\nstderr:\n%s", code, p.stderr.String())
	}
	if got := strings.TrimSpace(waitFile(t, filepath.Join(dir, "read"), time.Second, nil)); got != "typed" {
		t.Errorf("CMD read %q from /dev/tty, want typed", got)
	}
}
