-- KEYS[1] lock key; KEYS[2], when given, the lock's fencing counter.
-- ARGV[1] token; ARGV[2] ttl in ms.
-- Returns {1, pttl[, fence]} when the key now holds the token (set here, or
-- set by an earlier run of the same call whose reply was lost), {0, pttl}
-- when another token holds it. A key of another type raises WRONGTYPE
-- before anything is written.
local v = redis.call('GET', KEYS[1])
if not v then
  local fence
  if KEYS[2] then
    fence = redis.call('INCR', KEYS[2])
  end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, tonumber(ARGV[2]), fence}
end
local pttl = redis.call('PTTL', KEYS[1])
if v == ARGV[1] then
  if KEYS[2] then
    return {1, pttl, tonumber(redis.call('GET', KEYS[2]) or '0')}
  end
  return {1, pttl}
end
return {0, pttl}
