// Package onmini holds the redigo adapter's tests and runnable examples on
// miniredis. It has no code: it keeps miniredis out of the adapter
// package's own tests, so that a user of the adapter finds none in go.sum.
package onmini
