package main

import "syscall"

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
