//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// foregroundTTY returns the descriptor of stdin when it is a terminal whose
// foreground process group is relock's, so that CMD can be given the
// terminal; -1 otherwise (no terminal, or relock runs in the background).
func foregroundTTY() int {
	fd := int(os.Stdin.Fd())
	pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil || pgrp != syscall.Getpgrp() {
		return -1
	}
	return fd
}

// takeTerminal makes relock's process group the terminal's foreground
// again, after CMD had it. relock is in the background at that moment, so
// SIGTTOU, which would stop it, is ignored meanwhile.
func takeTerminal(fd int) {
	signal.Ignore(syscall.SIGTTOU)
	defer signal.Reset(syscall.SIGTTOU)
	_ = unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, syscall.Getpgrp())
}
