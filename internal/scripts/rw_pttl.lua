-- A read or write lock's remaining TTL: see rw_common.lua for the keys.
-- ARGV[1] token; ARGV[2] "r" or "w". Returns the ms left if the token holds
-- a live lock of that kind (-1: a writer's key without expiry), else -3.
local token = ARGV[1]
if ARGV[2] == 'w' then
  if holds(redis.call('GET', lock), token) then
    return redis.call('PTTL', lock)
  end
  return -3
end
local s = redis.call('ZSCORE', readers, token)
if s and tonumber(s) > now then
  return tonumber(s) - now
end
return -3
