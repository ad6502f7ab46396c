// Package onmini holds the goredisv8 adapter's tests on miniredis, kept
// out of the adapter's package so that its tests import no miniredis (a
// user's go mod tidy loads them). It has no code of its own.
package onmini
