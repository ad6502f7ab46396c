// Package scripts keeps relock's Lua scripts in one place, embedded from
// .lua files, each with its SHA-1 for EVALSHA.
package scripts

import (
	"crypto/sha1"
	_ "embed"
	"encoding/hex"
	"strings"
)

// Script is a Lua script and the SHA-1 that EVALSHA names it by.
type Script struct {
	Src  string
	SHA1 string
}

// handoverMark is the line of release.lua that queue_handover.lua replaces.
const handoverMark = "-- QUEUE_HANDOVER:"

// withHandover returns src with queue_handover.lua in place of the line
// that starts with handoverMark: a local function costs a closure on every
// run of the chunk, and a release of a lock nobody waits for (the common
// case, and the one to keep cheap) returns before that line.
func withHandover(src string) string {
	i := strings.Index(src, handoverMark)
	if i < 0 || strings.Count(src, handoverMark) != 1 {
		panic("scripts: no single " + handoverMark + " line")
	}
	j := i + strings.IndexByte(src[i:], '\n') + 1
	return src[:i] + queueHandoverSrc + src[j:]
}

func newScript(src string) *Script {
	sum := sha1.Sum([]byte(src))
	return &Script{Src: src, SHA1: hex.EncodeToString(sum[:])}
}

// The waiter-queue protocol, shared by the lock, the semaphore and the
// read-write lock (see queue_common.lua). queueSrc, the whole of it, is
// prepended to every script that queues or hands over (obtain.lua, and
// every sem_*.lua and rw_*.lua with their common file): one chunk, one
// EVALSHA. release.lua, which runs on every release, gets the hand-over
// half only (queueHandoverSrc), and after its short path: see withHandover.
var (
	//go:embed queue_handover.lua
	queueHandoverSrc string
	//go:embed queue_common.lua
	queueCommonSrc string

	queueSrc = queueHandoverSrc + queueCommonSrc
)

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
	Obtain = newScript(queueSrc + obtainSrc)
	// Release: see release.lua. KEYS lock[, queue, fence]; ARGV token,
	// waiter key prefix, channel, "leave", tombstone ms, fencing counter
	// ms. Returns 1 when it was ours.
	Release = newScript(withHandover(releaseSrc))
	// Refresh: ARGV[2] ttl ms. Returns 1 when extended, 0 when not ours.
	Refresh = newScript(refreshSrc)
	// PTTL: returns the remaining ms (-1 no expiry) when ours, -3 when not.
	PTTL = newScript(pttlSrc)
	// Inspect: see inspect.lua. KEYS lock[, queue, fence]; ARGV waiter
	// key prefix. Returns {value, pttl, fence, live waiters}.
	Inspect = newScript(inspectSrc)
)
