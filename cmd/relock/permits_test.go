package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relock-go/relock/internal/testkit/testredis"
)

// permitScript logs a start and an end line, with the fence and a
// nanosecond timestamp, around a sleep long enough for the processes
// started together to meet.
const permitScript = `echo "start $RELOCK_FENCE $(date +%s%N)" >> "$0"; sleep 0.3; echo "end $RELOCK_FENCE $(date +%s%N)" >> "$0"`

// TestRunPermits runs five relock run --permits 2 processes at once on one
// semaphore: every CMD runs and exits 0, never more than two run at once
// (and two do), and their fences are distinct.
func TestRunPermits(t *testing.T) {
	t.Parallel()
	s := testredis.Start(t)
	const procs, permits = 5, 2
	log := filepath.Join(t.TempDir(), "log")
	var wg sync.WaitGroup
	codes := make([]int, procs)
	stderrs := make([]string, procs)
	for i := range procs {
		wg.Go(func() {
			p := startRelock(t, "run", "-url", s.URL(), "-permits", fmt.Sprint(permits), "-ttl", "5s", "relock-cli:permits", "--", "sh", "-c", permitScript, log)
			codes[i] = p.wait(60 * time.Second)
			stderrs[i] = p.stderr.String()
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != 0 {
			t.Errorf("relock #%d: exit code %d, want 0\nstderr:\n%s", i, c, stderrs[i])
		}
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	type ev struct {
		at    int64
		start bool
	}
	var evs []ev
	fences := map[int64]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var what string
		var fence, at int64
		if _, err := fmt.Sscan(line, &what, &fence, &at); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		evs = append(evs, ev{at, what == "start"})
		if what == "start" {
			if fences[fence] {
				t.Errorf("fence %d twice", fence)
			}
			fences[fence] = true
		}
	}
	if len(evs) != 2*procs {
		t.Fatalf("%d log lines, want %d:\n%s", len(evs), 2*procs, b)
	}
	sort.SliceStable(evs, func(a, b int) bool {
		if evs[a].at == evs[b].at {
			return !evs[a].start
		}
		return evs[a].at < evs[b].at
	})
	n, most := 0, 0
	for _, e := range evs {
		if e.start {
			n++
		} else {
			n--
		}
		most = max(most, n)
	}
	if most != permits {
		t.Fatalf("at most %d commands ran at once, want %d:\n%s", most, permits, b)
	}
}

// TestRunPermitsUsage: a negative -permits is refused before Redis is
// reached.
func TestRunPermitsUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"run", "-permits", "-1", "k", "true"}, &stdout, &stderr)
	if code != exitError || !strings.Contains(stderr.String(), "-permits -1") {
		t.Fatalf("code %d, stderr %q", code, stderr.String())
	}
}
