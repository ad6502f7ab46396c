//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// foregroundTTY returns the first of stdin, stdout and stderr that is a
// terminal whose foreground process group is relock's, so that CMD can be
// given the terminal; -1 when there is none (no terminal, or relock runs
// in the background).
func foregroundTTY() int {
	for _, f := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		fd := int(f.Fd())
		if pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP); err == nil && pgrp == syscall.Getpgrp() {
			return fd
		}
	}
	return -1
}

// takeTerminal makes relock's process group the terminal's foreground
// again, after CMD had it. relock is in the background at that moment, so
// SIGTTOU, which would stop it, is ignored meanwhile.
func takeTerminal(fd int) {
	signal.Ignore(syscall.SIGTTOU)
	defer signal.Reset(syscall.SIGTTOU)
	_ = unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, syscall.Getpgrp())
}

// giveTerminal makes pgrp the terminal's foreground process group; relock
// must be in the foreground itself.
func giveTerminal(fd, pgrp int) {
	_ = unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, pgrp)
}
