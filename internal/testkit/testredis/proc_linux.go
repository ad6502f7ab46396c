package testredis

import (
	"os/exec"
	"syscall"
)

// tieToParent makes the kernel kill cmd's process when this process dies,
// so a test binary killed abruptly (a -timeout panic, SIGKILL) leaves no
// redis-server behind. Linux ties the signal to the thread that started
// the child; Go only retires a thread when a goroutine exits while locked
// to it, which nothing here does.
func tieToParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
