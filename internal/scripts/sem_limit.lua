-- Store (ARGV[1] > 0) or clear (ARGV[1] <= 0) the limit of a semaphore,
-- then hand the permits that are free under the new limit to the first
-- live waiters. A lower limit revokes nothing: holders beyond it keep
-- their permits until they release or lose them; none is granted until
-- fewer than the limit are live.
-- KEYS as sem_release.lua. ARGV[1] the new limit; ARGV[2] the caller's
-- limit (in force once cleared); ARGV[3] prefix of waiter keys; ARGV[4]
-- the hand-over channel; ARGV[5] fencing counter life in ms.
-- Returns the limit now in force.
local sem, queue, hold, limkey, fence = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = semNow()
semPurge(sem, hold, now)
if tonumber(ARGV[1]) > 0 then
  redis.call('SET', limkey, ARGV[1])
else
  redis.call('DEL', limkey)
end
local limit = semLimit(limkey, ARGV[2])
semGrant(sem, queue, hold, fence, limit, now, ARGV[3], ARGV[4], ARGV[5])
semSettle(sem, hold)
return limit
