package chaos

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/relock-go/relock/internal/testkit/testredis"
)

// Injector runs faults against one private server and records each fault's
// window in History. Its methods block for as long as the fault lasts, and
// fail t on an error; call them from the test's goroutine.
type Injector struct {
	T       testing.TB
	Server  *testredis.Server
	History *History
}

func (in Injector) do(args ...string) {
	in.T.Helper()
	if _, err := in.Server.Do(args...); err != nil {
		in.T.Fatalf("chaos: %v on %s: %v", args, in.Server.Addr(), err)
	}
}

// ClientKill cuts every client connection of the type given ("normal",
// "pubsub") with CLIENT KILL TYPE, an instant fault.
func (in Injector) ClientKill(typ string) {
	in.T.Helper()
	at := time.Now()
	in.do("CLIENT", "KILL", "TYPE", typ)
	in.History.AddFault("CLIENT KILL TYPE "+typ, at, at)
}

// ScriptFlush empties the server's script cache, an instant fault.
func (in Injector) ScriptFlush() {
	in.T.Helper()
	at := time.Now()
	in.do("SCRIPT", "FLUSH")
	in.History.AddFault("SCRIPT FLUSH", at, at)
}

// DebugSleep blocks the server for d with DEBUG SLEEP (the server must run
// with --enable-debug-command local, as testredis starts it); the window
// lasts until the reply.
func (in Injector) DebugSleep(d time.Duration) {
	in.T.Helper()
	at := time.Now()
	in.do("DEBUG", "SLEEP", strconv.FormatFloat(d.Seconds(), 'f', 3, 64))
	in.History.AddFault(fmt.Sprintf("DEBUG SLEEP %v", d), at, time.Now())
}

// PauseWrites runs CLIENT PAUSE d WRITE and waits until it is over.
func (in Injector) PauseWrites(d time.Duration) {
	in.T.Helper()
	at := time.Now()
	in.do("CLIENT", "PAUSE", strconv.FormatInt(d.Milliseconds(), 10), "WRITE")
	time.Sleep(time.Until(at.Add(d)))
	in.History.AddFault(fmt.Sprintf("CLIENT PAUSE %v WRITE", d), at, at.Add(d))
}

// Suspend stops the server with SIGSTOP for d, then continues it.
func (in Injector) Suspend(d time.Duration) {
	in.T.Helper()
	Suspend(in.T, in.History, "SIGSTOP", in.Server, d)
}

// Suspend stops srv with SIGSTOP for d, then continues it, and records the
// window in h under name.
func Suspend(t testing.TB, h *History, name string, srv *testredis.Server, d time.Duration) {
	t.Helper()
	at := time.Now()
	if err := srv.Suspend(); err != nil {
		t.Fatalf("chaos: SIGSTOP %s: %v", srv.Addr(), err)
	}
	time.Sleep(d)
	err := srv.Resume()
	h.AddFault(fmt.Sprintf("%s %v", name, d), at, time.Now())
	if err != nil {
		t.Fatalf("chaos: SIGCONT %s: %v", srv.Addr(), err)
	}
}

// RestartEmpty kills the server and starts it again at once, empty, on the
// same port; the window lasts until it answers again.
func (in Injector) RestartEmpty() {
	in.T.Helper()
	at := time.Now()
	in.Server.Restart()
	in.History.AddFault("restart empty", at, time.Now())
}
