//go:build !unix

package main

import (
	"context"
	"fmt"
	"io"
)

// runLeader reports that "relock leader" needs a Unix system, as relock
// run does.
func runLeader(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "relock leader: needs a Unix system (process groups and POSIX signals)")
	return exitError
}
