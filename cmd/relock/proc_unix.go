//go:build unix && !linux

package main

import "syscall"

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
