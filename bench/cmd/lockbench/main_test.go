package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relock-go/relock/internal/testkit/testredis"
)

// TestRun runs the command end to end on its own redis-server with tiny
// durations and checks the report has its header and both kinds of table.
func TestRun(t *testing.T) {
	if _, err := testredis.ServerBinary(); err != nil {
		if testredis.Required() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	out := filepath.Join(t.TempDir(), "report.md")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{
		"-duration", "100ms", "-contended-duration", "100ms", "-drain", "2s",
		"-only", "^(relock/goredis/default|raw/goredis)$",
		"-scenarios", "uncontended,contended-4", "-workers", "2", "-pause", "0",
		"-o", out,
	}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	report := stdout.String()
	for _, want := range []string{
		"- Redis: ", "private redis-server",
		"## uncontended: 2 workers", "| relock/goredis/default | ", "| 1.00x |",
		"## contended-4: 4 workers on one key", "| violations |",
		"## Contenders",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != report {
		t.Errorf("-o file differs from stdout (err %v)", err)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-only", "("},
		{"-only", "no-such-contender"},
		{"-scenarios", "sideways"},
		{"-clients", "some"},
		{"-rounds", "0"},
		{"-nonsense"},
	} {
		var stderr bytes.Buffer
		if err := run(context.Background(), args, &bytes.Buffer{}, &stderr); err == nil {
			t.Errorf("run(%q) accepted", args)
		}
	}
}
