// Package minitest runs the conformance suite of an adapter on miniredis.
// It is the one test helper that imports miniredis, kept apart from
// adaptertest so that an adapter's own tests import none (a user of the
// adapter would otherwise find miniredis in go.sum).
package minitest

import (
	"testing"

	"github.com/alicebob/miniredis/v2"

	"github.com/relock-go/relock/conformance"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
)

// Harness is adaptertest.ServerHarness over a fresh miniredis, stopped
// when t ends, with Advance (FastForward) and FlushAll.
func Harness(t *testing.T, newConn adaptertest.NewConnFunc) conformance.Harness {
	m := miniredis.RunT(t)
	h := adaptertest.ServerHarness(adaptertest.Backend{Addr: m.Addr(), Advance: m.FastForward}, newConn)
	h.FlushAll = func(t *testing.T) { adaptertest.MustDo(t, m.Addr(), "FLUSHALL") }
	return h
}

// RunConformance runs the conformance suite through newConn on one fresh
// miniredis for the whole run, skipping by name what known lists.
func RunConformance(t *testing.T, newConn adaptertest.NewConnFunc, known map[string]string) {
	h := Harness(t, newConn)
	h.KnownFailures = known
	conformance.Run(t, h)
}
