-- Release a permit of a semaphore, and hand the free permits to the first
-- live waiters: release.lua's contract.
-- KEYS[1] the semaphore; KEYS[2] its waiter queue; KEYS[3] its holders'
-- hash; KEYS[4] its stored limit; KEYS[5] its fencing counter.
-- ARGV[1] token; ARGV[2] prefix of waiter keys; ARGV[3] the hand-over
-- channel; ARGV[4] "leave" when a waiter gives up: take it out of the
-- queue first, for good (its waiter key becomes "-" for ARGV[5] ms);
-- ARGV[6] fencing counter life in ms; ARGV[7] the caller's limit, used
-- unless one is stored.
--
-- Permits that expired are dropped first, so they are handed over too.
-- Hand-overs follow whether or not the token held a permit: free permits
-- go to the waiters they are owed to. Returns 1 if the token held a live
-- permit (now removed), else 0.
local sem, queue, hold, limkey, fence = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local token = ARGV[1]
if ARGV[4] == 'leave' then
  redis.call('LREM', queue, 0, token)
  redis.call('SET', ARGV[2] .. token, '-', 'PX', ARGV[5])
end
local now = semNow()
semPurge(sem, hold, now)
local ours = redis.call('ZREM', sem, token)
if ours == 1 then
  redis.call('HDEL', hold, token)
end
semGrant(sem, queue, hold, fence, semLimit(limkey, ARGV[7]), now, ARGV[2], ARGV[3], ARGV[6])
semSettle(sem, hold)
return ours
