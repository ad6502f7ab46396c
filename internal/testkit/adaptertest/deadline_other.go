//go:build !unix

package adaptertest

import "errors"

var errNoSignals = errors.New("SIGSTOP and SIGCONT exist only on Unix")

func stopProcess(int) error     { return errNoSignals }
func continueProcess(int) error { return errNoSignals }
