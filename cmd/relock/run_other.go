//go:build !unix

package main

import (
	"context"
	"fmt"
	"io"
)

// runRun reports that "relock run" (and hold) needs a Unix system: it relies on
// process groups and POSIX signals to pass signals on to CMD and to stop it.
func runRun(_ context.Context, _ []string, _, stderr io.Writer, _ bool) int {
	fmt.Fprintln(stderr, "relock run and relock hold: need a Unix system (process groups and POSIX signals)")
	return exitError
}
