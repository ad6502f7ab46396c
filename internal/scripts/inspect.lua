-- Inspect a lock, whoever holds it.
-- KEYS[1] lock key; KEYS[2], KEYS[3] (optional, together) its waiter queue
-- and fencing counter. ARGV[1] prefix of waiter keys.
-- Returns {value, pttl, fence, waiters}: the key's value (false when it
-- does not exist), its PTTL in ms (-2 missing, -1 no expiry), the fencing
-- counter (0 without one) and how many live waiters queue (entries whose
-- waiter key is live; at most the first 1000 are looked at).
-- A key of another type raises WRONGTYPE.
local lock, queue, fence = KEYS[1], KEYS[2], KEYS[3]
local v = redis.call('GET', lock)
local n, waiters = 0, 0
if queue then
  n = tonumber(redis.call('GET', fence) or '0')
  for _, tok in ipairs(redis.call('LRANGE', queue, 0, 999)) do
    local w = redis.call('GET', ARGV[1] .. tok)
    if w and w ~= '-' then
      waiters = waiters + 1
    end
  end
end
return {v, redis.call('PTTL', lock), n, waiters}
