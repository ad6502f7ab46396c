//go:build !unix

package testredis

import (
	"errors"
	"os"
)

// Suspend would stop the server's process with SIGSTOP; there is no such
// signal here, so it returns errors.ErrUnsupported.
func (s *Server) Suspend() error { return errors.ErrUnsupported }

// Resume would continue a suspended server; see Suspend.
func (s *Server) Resume() error { return errors.ErrUnsupported }

func wake(*os.Process) {}
