//go:build unix

package testredis

import (
	"errors"
	"os"
	"syscall"
)

// Suspend stops the server's process with SIGSTOP, as a stall would (a
// long GC pause, a frozen VM): it keeps its connections and its data, and
// reads nothing, answers nothing and expires nothing until Resume. The
// process's clock keeps running, so keys whose deadline passed meanwhile
// expire as soon as it resumes. Suspending a suspended server does
// nothing; the clean-up (and Stop, Restart) end a suspended server as
// promptly as a running one.
func (s *Server) Suspend() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a server stopped by Suspend (SIGCONT). Resuming a
// running server does nothing.
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig os.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return errors.New("testredis: server not running")
	}
	return s.proc.Process.Signal(sig)
}

// wake continues p if it was suspended, so that a SIGTERM sent to it is
// acted on at once.
func wake(p *os.Process) { _ = p.Signal(syscall.SIGCONT) }
