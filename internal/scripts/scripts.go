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
	Name string
	Src  string
	SHA1 string
}

func newScript(name, src string) *Script {
	sum := sha1.Sum([]byte(src))
	return &Script{Name: name, Src: src, SHA1: hex.EncodeToString(sum[:])}
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
)

// The scripts. Each takes the lock key as KEYS[1] and the token as ARGV[1].
var (
	// Obtain: see obtain.lua. KEYS lock[, queue[, fence]]; ARGV token,
	// ttl ms, join the queue ("1"), waiter key prefix, waiter key ms.
	Obtain = newScript("obtain", obtainSrc)
	// Release: see release.lua. KEYS lock[, queue, fence]; ARGV token,
	// waiter key prefix, channel, "leave". Returns 1 when it was ours.
	Release = newScript("release", releaseSrc)
	// Refresh: ARGV[2] ttl ms. Returns 1 when extended, 0 when not ours.
	Refresh = newScript("refresh", refreshSrc)
	// PTTL: returns the remaining ms (-1 no expiry) when ours, -3 when not.
	PTTL = newScript("pttl", pttlSrc)
)
