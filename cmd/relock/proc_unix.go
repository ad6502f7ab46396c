//go:build unix && !linux

package main

import (
	"syscall"
	"time"
)

// childAttr returns how CMD is started: in a process group of its own (in
// the terminal's foreground when tty is not -1). Unlike on Linux, nothing
// stops CMD should relock be killed with SIGKILL.
func childAttr(tty int) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if tty >= 0 {
		a.Foreground, a.Ctty = true, tty
	}
	return a
}

// stopSelf stops relock with SIGSTOP and returns once it is continued.
// Another thread may take the signal, so the caller waits a moment for the
// stop to reach it, rather than run on past it.
func stopSelf() {
	_ = syscall.Kill(syscall.Getpid(), syscall.SIGSTOP)
	time.Sleep(50 * time.Millisecond)
}
