-- Read a semaphore's state; writes nothing.
-- KEYS as sem_release.lua. ARGV[1] prefix of waiter keys; ARGV[2] the
-- caller's limit. Returns {limit, stored (1 when an operator's limit is
-- in force), fencing counter (0 none), live waiters, holders}, holders
-- being {token, ms left, hold entry ("fence[|metadata]", "" if missing),
-- ...} for each live permit, the soonest to expire first.
local sem, queue, hold, limkey, fence = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = semNow()
local limit, stored = semLimit(limkey, ARGV[2])
local holders = {}
local zs = redis.call('ZRANGEBYSCORE', sem, '(' .. now, '+inf', 'WITHSCORES')
for i = 1, #zs, 2 do
  holders[#holders + 1] = zs[i]
  holders[#holders + 1] = tonumber(zs[i + 1]) - now
  holders[#holders + 1] = redis.call('HGET', hold, zs[i]) or ''
end
local waiters, counted = 0, {}
for _, w in ipairs(redis.call('LRANGE', queue, 0, 999)) do
  if not counted[w] then
    counted[w] = true
    local v = redis.call('GET', ARGV[1] .. w)
    if v and v ~= '-' then
      waiters = waiters + 1
    end
  end
end
local f = tonumber(redis.call('GET', fence) or '0') or 0
return {limit, stored, f, waiters, holders}
