-- KEYS[1] lock key; ARGV[1] token; ARGV[2] ttl in ms.
-- Returns {1, pttl} when the key now holds the token (set here, or set by an
-- earlier run of the same call whose reply was lost), {0, pttl} when another
-- token holds it. A key of another type raises WRONGTYPE from GET.
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, tonumber(ARGV[2])}
end
if v == ARGV[1] then
  return {1, redis.call('PTTL', KEYS[1])}
end
return {0, redis.call('PTTL', KEYS[1])}
