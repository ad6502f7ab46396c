package testredis

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

const orphanEnv = "RELOCK_TESTREDIS_ORPHAN"

// TestOrphanChild is the child process of TestServersDieWithTheTestBinary:
// it starts a server, reports it, and waits to be killed.
func TestOrphanChild(t *testing.T) {
	if os.Getenv(orphanEnv) == "" {
		t.Skip("runs only as the child of TestServersDieWithTheTestBinary")
	}
	s := Start(t)
	fmt.Printf("server %d %d\n", s.pid(), s.Port())
	time.Sleep(time.Minute) // killed long before this ends
}

// A test binary killed by SIGKILL (no cleanup runs) takes its servers with
// it.
func TestServersDieWithTheTestBinary(t *testing.T) {
	serverBinary(t) // skips, or fails under RELOCK_REQUIRE_REDIS, without one
	cmd := exec.Command(os.Args[0], "-test.run=^TestOrphanChild$", "-test.v")
	cmd.Env = append(os.Environ(), orphanEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid, port int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if n, _ := fmt.Sscanf(sc.Text(), "server %d %d", &pid, &port); n == 2 {
			break
		}
	}
	if pid == 0 {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("the child test reported no server")
	}
	// Should the kernel not kill it, do not leave it running.
	t.Cleanup(func() {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.Contains(string(b), fmt.Sprintf(":%d", port)) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	gone(t, pid, port)
}
