// Package onmini runs the tests of the radix adapter that need miniredis,
// kept apart so that the adapter's own tests import none.
package onmini
