// Package conformance tests that a relock driver keeps the promises of the
// driver package, through the portable relock API and through the raw
// driver methods.
//
// Every adapter in this repository runs it from its own tests, and so
// should every custom backend:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Harness{
//			NewConn: func(t *testing.T) driver.Conn { return mybackend.New(...) },
//		})
//	}
//
// Run starts named subtests, so a failure names the promise that broke and
// `go test -run 'TestConformance/Release'` runs one group. Subtests that
// need an optional driver capability the driver lacks, or a Harness hook
// left nil, are skipped with a message that names it.
package conformance
