// Package scripts keeps relock's Lua scripts in one place, embedded from
// .lua files, each with its SHA-1 for EVALSHA.
package scripts

import (
	"crypto/sha1"
	_ "embed"
	"encoding/hex"
)

// Script is a Lua script and the SHA-1 that EVALSHA names it by.
type Script struct {
	Src  string
	SHA1 string
}

func newScript(src string) *Script {
	sum := sha1.Sum([]byte(src))
	return &Script{Src: src, SHA1: hex.EncodeToString(sum[:])}
}

var (
	//go:embed obtain.lua
	obtainSrc string
	//go:embed release.lua
	releaseSrc string
	//go:embed refresh.lua
	refreshSrc string
	//go:embed pttl.lua
	pttlSrc string
	//go:embed inspect.lua
	inspectSrc string
)

// The scripts. Each takes the lock key as KEYS[1] and the token as ARGV[1].
var (
	// Obtain: see obtain.lua. KEYS lock[, queue[, fence]]; ARGV token,
	// ttl ms, queue mode, waiter key prefix, waiter key ms, metadata,
	// fencing counter ms, hand-over claim ms, end of the place (server ms, "" for none).
	Obtain = newScript(obtainSrc)
	// Release: see release.lua. KEYS lock[, queue, fence]; ARGV token,
	// waiter key prefix, channel, "leave", tombstone ms, fencing counter
	// ms. Returns 1 when it was ours.
	Release = newScript(releaseSrc)
	// Refresh: ARGV[2] ttl ms. Returns 1 when extended, 0 when not ours.
	Refresh = newScript(refreshSrc)
	// PTTL: returns the remaining ms (-1 no expiry) when ours, -3 when not.
	PTTL = newScript(pttlSrc)
	// Inspect: see inspect.lua. KEYS lock[, queue, fence]; ARGV waiter
	// key prefix. Returns {value, pttl, fence, live waiters}.
	Inspect = newScript(inspectSrc)
)
