-- Obtain a lock, or queue for it.
-- KEYS[1] lock key; KEYS[2] (optional) the lock's waiter queue, a list of
-- tokens; KEYS[3] (optional) its fencing counter.
-- ARGV[1] token; ARGV[2] ttl in ms; ARGV[3] "1" to join the queue when the
-- lock is taken; ARGV[4] prefix of waiter keys (prefix..token holds the
-- waiter's ttl, plus ":f" when it wants a fencing number, and expires when
-- the waiter stops renewing its place); ARGV[5] waiter key lifetime in ms.
--
-- Returns {1, pttl[, fence]} when the key now holds the token: set here, set
-- by an earlier run of the same call whose reply was lost, or handed over
-- to us by a release. Otherwise {0, pttl} (pttl -1: unknown), and when we
-- joined the queue {0, pttl, seconds, microseconds} of the server's clock.
-- A key of another type raises WRONGTYPE before anything is written.
local lock, queue, fence = KEYS[1], KEYS[2], KEYS[3]
local token, ttl = ARGV[1], ARGV[2]
local queued = ARGV[3] == '1'
local v = redis.call('GET', lock)
if v == token then
  if queued then
    redis.call('DEL', ARGV[4] .. token)
  end
  if fence then
    return {1, redis.call('PTTL', lock), tonumber(redis.call('GET', fence) or '0')}
  end
  return {1, redis.call('PTTL', lock)}
end
local pttl = -1
if v then
  pttl = redis.call('PTTL', lock)
else
  -- Free: take it, unless a live waiter queues ahead of us.
  local ahead = false
  if queue then
    while true do
      local head = redis.call('LINDEX', queue, 0)
      if not head then
        break
      end
      if head == token then
        redis.call('LPOP', queue)
        break
      end
      if redis.call('EXISTS', ARGV[4] .. head) == 1 then
        ahead = true
        break
      end
      redis.call('LPOP', queue) -- a waiter that gave up without leaving
    end
  end
  if not ahead then
    local n
    if fence then
      n = redis.call('INCR', fence)
    end
    redis.call('SET', lock, token, 'PX', ttl)
    if queued then
      redis.call('DEL', ARGV[4] .. token)
    end
    return {1, tonumber(ttl), n}
  end
end
if queue and queued then
  -- Join the queue, or renew our place in it. A token listed twice (its
  -- waiter key had expired) is harmless: a release skips entries whose
  -- waiter key is gone.
  local want = ttl
  if fence then
    want = ttl .. ':f'
  end
  if not redis.call('SET', ARGV[4] .. token, want, 'PX', ARGV[5], 'GET') then
    redis.call('RPUSH', queue, token)
  end
  local t = redis.call('TIME')
  return {0, pttl, t[1], t[2]}
end
return {0, pttl}
