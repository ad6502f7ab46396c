package main

import (
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// childAttr returns how CMD is started: in a process group of its own (in
// the terminal's foreground when tty is not -1), and killed by the kernel
// should relock die first.
func childAttr(tty int) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if tty >= 0 {
		a.Foreground, a.Ctty = true, tty
	}
	return a
}

// stopSelf stops relock with SIGSTOP and returns once it is continued.
// The signal goes to the calling thread (locked to this goroutine), which
// therefore stops before it returns: a process-wide kill(2) may be taken
// by another thread, and the caller run on for a moment.
func stopSelf() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_ = unix.Tgkill(unix.Getpid(), unix.Gettid(), unix.SIGSTOP)
}
