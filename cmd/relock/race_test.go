//go:build race

package main

// raceEnabled: the tests build the relock binary with -race too.
const raceEnabled = true
