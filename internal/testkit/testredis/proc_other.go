//go:build !linux

package testredis

import "os/exec"

// tieToParent does nothing where the kernel offers no parent-death signal:
// there a test binary killed abruptly leaves its servers running.
func tieToParent(*exec.Cmd) {}
