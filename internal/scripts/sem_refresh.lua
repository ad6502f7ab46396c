-- KEYS[1] the semaphore; KEYS[2] its holders' hash. ARGV[1] token;
-- ARGV[2] new ttl in ms. Sets the permit's expiry to ttl from now only if
-- the token holds a live permit: an expired one is dropped first, never
-- revived. Returns 1 if set, else 0.
local sem, hold = KEYS[1], KEYS[2]
local now = semNow()
semPurge(sem, hold, now)
if not redis.call('ZSCORE', sem, ARGV[1]) then
  return 0
end
redis.call('ZADD', sem, 'XX', string.format('%d', now + tonumber(ARGV[2])), ARGV[1])
semSettle(sem, hold)
return 1
