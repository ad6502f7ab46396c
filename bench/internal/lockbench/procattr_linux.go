package lockbench

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the server if lockbench dies without
// running its clean-up (SIGPIPE from `| head`, SIGKILL). Pdeathsig follows
// the thread that started the child; Go keeps its threads alive unless a
// goroutine locked to one exits, which the starter never does.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
