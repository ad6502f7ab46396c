package scripts

import _ "embed"

// The read-write lock's scripts (rwlock.go in the root package). Each is
// the waiter-queue protocol (queueSrc), then rw_common.lua, which names
// the five keys and holds the shared functions, then its own file. KEYS,
// for every one: lock key, readers (sorted set), readers' metadata (hash),
// read-write waiter queue, fencing counter.

var (
	//go:embed rw_common.lua
	rwCommonSrc string
	//go:embed rw_obtain.lua
	rwObtainSrc string
	//go:embed rw_release.lua
	rwReleaseSrc string
	//go:embed rw_refresh.lua
	rwRefreshSrc string
	//go:embed rw_pttl.lua
	rwPTTLSrc string
	//go:embed rw_inspect.lua
	rwInspectSrc string

	rwSrc = queueSrc + rwCommonSrc
)

var (
	// RWObtain: obtain.lua's ARGV and reply, then ARGV[10] "r" or "w",
	// ARGV[11] "f" for a fencing number.
	RWObtain = newScript(rwSrc + rwObtainSrc)
	// RWRelease: release.lua's ARGV, then ARGV[7] "r" or "w". Returns 1
	// when it was ours.
	RWRelease = newScript(rwSrc + rwReleaseSrc)
	// RWRefresh: ARGV token, ttl ms, "r" or "w". Returns 1 when extended.
	RWRefresh = newScript(rwSrc + rwRefreshSrc)
	// RWPTTL: ARGV token, "r" or "w". Returns the ms left, -3 when not ours.
	RWPTTL = newScript(rwSrc + rwPTTLSrc)
	// RWInspect: ARGV waiter key prefix. Returns {value, pttl, fence,
	// readers (token, ms, meta)..., waiters (token, kind, meta)...}.
	RWInspect = newScript(rwSrc + rwInspectSrc)
)
