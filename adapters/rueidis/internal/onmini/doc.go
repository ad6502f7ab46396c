// Package onmini holds the rueidis adapter's tests that run on miniredis,
// an in-memory server, so that the adapter's own tests import no miniredis
// (a user of the adapter would otherwise find it in go.sum): the
// conformance suite with a fast-forwarded clock, the runnable example, and
// what rueidis does on a server that lacks CLIENT TRACKING and answers
// CLUSTER SLOTS. It has no code; see its _test.go files.
package onmini
