package conformance

import "testing"

// Run runs the suite against the backend h reaches. (Being written: the
// subtests land in this file.)
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.NewConn == nil {
		t.Fatal("conformance: Harness.NewConn is nil")
	}
}
