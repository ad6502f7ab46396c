// Package onmini holds the tests of the goredis adapter that run on
// miniredis, an in-process Redis: the conformance suite, the replica wait
// against a WAIT that answers 0, and the runnable example. They live apart
// so that the adapter package's own tests import no miniredis: a user's
// go mod tidy loads the tests of the packages it imports, not of this
// one. There is nothing to import here.
package onmini
