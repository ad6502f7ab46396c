package main

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"go.uber.org/goleak"

	"github.com/relock-go/relock"
)

// The adapters main.go imports; a dropped import must fail the tests.
var wantAdapters = []string{"goredis", "goredisv8", "radix", "redigo", "rueidis", "valkey"}

// tableRows returns the demo table's rows by their first column, each split
// into its columns (the no-lock row's name is one column too).
func tableRows(t *testing.T, out string) map[string][]string {
	t.Helper()
	rows := map[string][]string{}
	inTable := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "ADAPTER "):
			inTable = true
		case !inTable:
		case strings.TrimSpace(line) == "":
			inTable = false
		case strings.HasPrefix(line, noLockRow):
			rows[noLockRow] = append([]string{noLockRow}, strings.Fields(strings.TrimPrefix(line, noLockRow))...)
		default:
			f := strings.Fields(line)
			rows[f[0]] = f
		}
	}
	if len(rows) == 0 {
		t.Fatalf("no table in the output:\n%s", out)
	}
	return rows
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("column %q is not a number", s)
	}
	return n
}

// checkRows asserts the table reports, for every adapter, workers*rounds
// acquisitions and increments and no lost update.
func checkRows(t *testing.T, out string, workers, rounds int) {
	t.Helper()
	rows := tableRows(t, out)
	for _, name := range wantAdapters {
		f, ok := rows[name]
		if !ok {
			t.Errorf("no row for adapter %s in:\n%s", name, out)
			continue
		}
		// ADAPTER WORKERS ACQUISITIONS EXPECTED ACTUAL LOST P50 P99 MAX ELAPSED RESULT
		if len(f) != 11 {
			t.Errorf("%s: row %q has %d columns, want 11", name, f, len(f))
			continue
		}
		want := workers * rounds
		if got := atoi(t, f[1]); got != workers {
			t.Errorf("%s: workers = %d, want %d", name, got, workers)
		}
		if got := atoi(t, f[2]); got != want {
			t.Errorf("%s: acquisitions = %d, want %d", name, got, want)
		}
		if got := atoi(t, f[3]); got != want {
			t.Errorf("%s: expected = %d, want %d", name, got, want)
		}
		if got := atoi(t, f[4]); got != want {
			t.Errorf("%s: actual = %d, want %d", name, got, want)
		}
		if got := atoi(t, f[5]); got != 0 {
			t.Errorf("%s: lost updates = %d, want 0", name, got)
		}
		if f[10] != "ok" {
			t.Errorf("%s: result %q, want ok", name, f[10])
		}
	}
	f, ok := rows[noLockRow]
	if !ok {
		t.Fatalf("no %s row in:\n%s", noLockRow, out)
	}
	// Lost updates without a lock depend on timing: only the sum is fixed.
	exp, act, lost := atoi(t, f[3]), atoi(t, f[4]), atoi(t, f[5])
	if exp != workers*rounds || lost != exp-act || act < 1 || act > exp {
		t.Errorf("%s row: expected %d, actual %d, lost %d; want expected %d, 1 <= actual <= expected, lost = expected-actual",
			noLockRow, exp, act, lost, workers*rounds)
	}
}

func runForTest(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code = run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestDriversRegistered(t *testing.T) {
	got := relock.Drivers()
	for _, name := range wantAdapters {
		found := false
		for _, g := range got {
			found = found || g == name
		}
		if !found {
			t.Errorf("driver %q not registered (have %v)", name, got)
		}
	}
}

// TestDemoEmbedded runs the demo as "relock demo" does on a machine without
// Redis: with the embedded miniredis and every registered adapter.
func TestDemoEmbedded(t *testing.T) {
	defer goleak.VerifyNone(t, ignoreBuild)
	const workers, rounds = 4, 10
	code, out, errOut := runForTest(t, "demo", "-workers", strconv.Itoa(workers), "-rounds", strconv.Itoa(rounds))
	if code != exitOK {
		t.Fatalf("exit code %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "embedded miniredis") {
		t.Errorf("output does not say which Redis was used:\n%s", out)
	}
	checkRows(t, out, workers, rounds)
}

// TestDemoURL points the demo at a server through -url and checks that it
// leaves no key behind.
func TestDemoURL(t *testing.T) {
	mr := miniredis.RunT(t)
	mr.Set("unrelated", "kept") // the demo must touch only its own keys
	const workers, rounds = 3, 7
	url := "redis://" + mr.Addr() + "/0"
	code, out, errOut := runForTest(t, "demo", "-url", url,
		"-workers", strconv.Itoa(workers), "-rounds", strconv.Itoa(rounds))
	if code != exitOK {
		t.Fatalf("exit code %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(out, url) {
		t.Errorf("output does not name the Redis URL %s:\n%s", url, out)
	}
	checkRows(t, out, workers, rounds)
	if keys := mr.Keys(); len(keys) != 1 || keys[0] != "unrelated" {
		t.Errorf("keys left in Redis after the demo: %v, want [unrelated]", keys)
	}
}

// TestDemoOneAdapter checks -adapters: only the named adapter runs.
func TestDemoOneAdapter(t *testing.T) {
	code, out, errOut := runForTest(t, "demo", "-adapters", "redigo", "-workers", "2", "-rounds", "3")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	rows := tableRows(t, out)
	if _, ok := rows["redigo"]; !ok || len(rows) != 2 {
		t.Errorf("rows %v, want (no lock) and redigo only", rows)
	}
}

// TestDemoLockExpires makes the lock expire inside the critical section:
// the demo must notice and exit 1, not report success.
func TestDemoLockExpires(t *testing.T) {
	code, out, errOut := runForTest(t, "demo", "-adapters", "goredis",
		"-workers", "2", "-rounds", "3", "-ttl", "10ms", "-pause", "40ms")
	if code != exitFailure {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitFailure, out, errOut)
	}
	if !strings.Contains(errOut, "expired while held") {
		t.Errorf("stderr does not explain the failure:\n%s", errOut)
	}
}

// TestDemoUnreachable checks that a server that is not there fails fast.
func TestDemoUnreachable(t *testing.T) {
	mr := miniredis.RunT(t)
	addr := mr.Addr()
	mr.Close()
	start := time.Now()
	code, _, errOut := runForTest(t, "demo", "-url", "redis://"+addr, "-timeout", "5s")
	if code != exitFailure {
		t.Fatalf("exit code %d, want %d\nstderr:\n%s", code, exitFailure, errOut)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v to give up", d)
	}
}

// TestDemoTimeout checks that -timeout bounds the whole demo.
func TestDemoTimeout(t *testing.T) {
	start := time.Now()
	code, out, errOut := runForTest(t, "demo", "-rounds", "100000", "-timeout", "300ms")
	if code != exitFailure {
		t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitFailure, out, errOut)
	}
	if !strings.Contains(errOut, "gave up after -timeout 300ms") {
		t.Errorf("stderr does not name the timeout:\n%s", errOut)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v to stop after the timeout", d)
	}
}

// TestDemoInterrupted checks that a cancelled context (Ctrl-C) ends the
// demo promptly with exit code 130.
func TestDemoInterrupted(t *testing.T) {
	defer goleak.VerifyNone(t, ignoreBuild)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	var out, errOut bytes.Buffer
	start := time.Now()
	code := run(ctx, []string{"demo", "-rounds", "100000"}, &out, &errOut)
	if code != exitInterrupted {
		t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitInterrupted, out.String(), errOut.String())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v to stop after the interrupt", d)
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
	}{
		{nil, exitUsage},
		{[]string{"bogus"}, exitUsage},
		{[]string{"help"}, exitOK},
		{[]string{"-h"}, exitOK},
		{[]string{"demo", "-h"}, exitOK},
		{[]string{"demo", "-bogus"}, exitUsage},
		{[]string{"demo", "extra"}, exitUsage},
		{[]string{"demo", "-workers", "0"}, exitUsage},
		{[]string{"demo", "-rounds", "0"}, exitUsage},
		{[]string{"demo", "-ttl", "0s"}, exitUsage},
		{[]string{"demo", "-adapters", "nosuchdriver"}, exitUsage},
		{[]string{"demo", "-adapters", ","}, exitUsage},
		{[]string{"demo", "-url", "http://example.com"}, exitUsage},
	}
	for _, tt := range tests {
		code, out, errOut := runForTest(t, tt.args...)
		if code != tt.code {
			t.Errorf("run(%q) = %d, want %d\nstdout:\n%s\nstderr:\n%s", tt.args, code, tt.code, out, errOut)
		}
		if code == exitUsage && !strings.Contains(errOut, "usage:") && !strings.Contains(errOut, "relock demo:") {
			t.Errorf("run(%q): stderr explains nothing:\n%s", tt.args, errOut)
		}
	}
}

func TestUnknownCommandPrintsUsage(t *testing.T) {
	code, out, errOut := runForTest(t, "frobnicate")
	if code != exitUsage {
		t.Fatalf("exit code %d, want 2", code)
	}
	if out != "" || !strings.Contains(errOut, `unknown command "frobnicate"`) || !strings.Contains(errOut, "demo") {
		t.Errorf("stdout %q, stderr %q: want usage naming demo on stderr only", out, errOut)
	}
}

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var d []time.Duration
		for _, x := range n {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	s := ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.99, 10 * time.Millisecond}, {1, 10 * time.Millisecond}, {0, time.Millisecond}} {
		if got := percentile(s, tt.p); got != tt.want {
			t.Errorf("percentile(1..10ms, %v) = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile(nil) = %v, want 0", got)
	}
}
