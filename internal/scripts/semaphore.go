package scripts

import _ "embed"

// The semaphore's scripts (see sem_common.lua for its data layout). Each
// is the waiter-queue protocol (queueSrc), sem_common.lua, then its own
// file, one chunk.
var (
	//go:embed sem_common.lua
	semCommonSrc string
	//go:embed sem_obtain.lua
	semObtainSrc string
	//go:embed sem_release.lua
	semReleaseSrc string
	//go:embed sem_refresh.lua
	semRefreshSrc string
	//go:embed sem_pttl.lua
	semPTTLSrc string
	//go:embed sem_limit.lua
	semLimitSrc string
	//go:embed sem_inspect.lua
	semInspectSrc string

	semSrc = queueSrc + semCommonSrc
)

var (
	// SemObtain: see sem_obtain.lua. KEYS sem, queue, holders, limit[,
	// fence]; ARGV as Obtain's, then the caller's limit. Replies as Obtain.
	SemObtain = newScript(semSrc + semObtainSrc)
	// SemRelease: see sem_release.lua. KEYS sem, queue, holders, limit,
	// fence; ARGV as Release's, then the caller's limit. Returns 1 when
	// the token held a permit.
	SemRelease = newScript(semSrc + semReleaseSrc)
	// SemRefresh: KEYS sem, holders; ARGV token, ttl ms. 1 when extended.
	SemRefresh = newScript(semSrc + semRefreshSrc)
	// SemPTTL: KEYS sem; ARGV token. Remaining ms, -3 when not a holder.
	SemPTTL = newScript(semSrc + semPTTLSrc)
	// SemLimit: KEYS as SemRelease; ARGV new limit (<= 0 clears), the
	// caller's limit, waiter key prefix, channel, fencing counter ms.
	// Returns the limit in force.
	SemLimit = newScript(semSrc + semLimitSrc)
	// SemInspect: KEYS as SemRelease; ARGV waiter key prefix, the
	// caller's limit. Returns {limit, stored, fence, waiters, holders}.
	SemInspect = newScript(semSrc + semInspectSrc)
)
