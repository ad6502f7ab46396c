-- Obtain a permit of a semaphore, or queue for one: obtain.lua's contract
-- (ARGV, statuses, reply, and queue_common.lua's protocol), with "the lock
-- is free" read as "fewer live permits than the limit".
-- KEYS[1] the semaphore (sorted set); KEYS[2] its waiter queue; KEYS[3]
-- its holders' hash; KEYS[4] its stored limit; KEYS[5] (optional: only
-- when a fencing number is wanted) its fencing counter.
-- ARGV[1] token; ARGV[2] ttl in ms; ARGV[3] queue mode ("0" do not queue,
-- "1" join, "2" renew our place, never re-create it); ARGV[4] prefix of
-- waiter keys; ARGV[5] waiter key lifetime in ms; ARGV[6] metadata ("" for
-- none); ARGV[7] fencing counter life in ms; ARGV[8] hand-over claim in
-- ms; ARGV[9] ("" for none) when our place must end at the latest, server
-- ms; ARGV[10] the caller's limit, used unless one is stored.
--
-- A permit is free when fewer than the limit are live. A try takes one
-- unless as many live waiters queue ahead of it as there are free permits
-- (they are owed them: a release hands permits to the first of them), and
-- a renewal takes one only while its place is live (see obtain.lua).
-- Taking a permit takes our token out of the queue.
--
-- Returns {status, pttl, fence, seconds, microseconds}:
--   1 the token holds a permit: taken here, by an earlier run of the same
--     call, or handed to us (its expiry is set to ttl here, which confirms
--     a hand-over's claim); pttl is ours, fence its fencing number;
--   0 no permit for us, not queued; 2 no permit, and we are queued;
--   3 our place had lapsed (a renewal): join again; 4 we left for good.
-- In statuses 0, 2 and 3, seconds and microseconds are the server's clock,
-- and pttl is when to look again at the latest: the earliest expiry of a
-- permit when all are taken, or what is left of the lease of a waiter
-- ahead that keeps the free permits (-1 unknown).
local sem, queue, hold, limkey, fence = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local token, ttl, mode, meta = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[6]
local wprefix = ARGV[4]
local wkey = wprefix .. token
local lease = tonumber(ARGV[5])
local now, t = semNow()
semPurge(sem, hold, now)

if redis.call('ZSCORE', sem, token) then
  -- Ours: confirm it to the full ttl (a hand-over's claim is short), so
  -- the permit's validity counts from this try.
  if mode ~= '0' then
    redis.call('DEL', wkey)
  end
  redis.call('ZADD', sem, 'XX', string.format('%d', now + ttl), token)
  local n = 0
  local h = redis.call('HGET', hold, token)
  if h then
    n = tonumber(string.match(h, '^(%d+)')) or 0
  end
  semSettle(sem, hold)
  return {1, ttl, n, 0, 0}
end

local place
place, mode, lease = queuePlace(queue, wkey, mode, lease, ARGV[9], now)
if place == '-' then
  return {4, -1, 0, 0, 0}
end

local limit = semLimit(limkey, ARGV[10])
local free = limit - redis.call('ZCARD', sem)
local pttl = -1
if free > 0 then
  -- Count the live waiters ahead of us, up to free: dead entries at the
  -- head are dropped; others are skipped (a release drops them).
  local ahead, i, scanned, listed, soonest = 0, 0, 0, false, -1
  while true do
    if scanned >= 1000 then
      ahead = free -- too long a queue to read here: wait for a release
      break
    end
    scanned = scanned + 1
    local w = redis.call('LINDEX', queue, i)
    if not w then
      break
    end
    if w == token then
      listed = true
      break
    end
    local v = redis.call('GET', wprefix .. w)
    if v and v ~= '-' then
      ahead = ahead + 1
      local p = redis.call('PTTL', wprefix .. w)
      if soonest < 0 or p < soonest then
        soonest = p
      end
      if ahead >= free then
        break
      end
      i = i + 1
    elseif i == 0 then
      redis.call('LPOP', queue) -- a waiter that left, or stopped renewing
    else
      i = i + 1
    end
  end
  -- A renewal whose place is gone (consumed by a hand-over, or lapsed)
  -- does not take one: it reports the lapse, and the waiter joins again.
  if ahead < free and (mode ~= '2' or place) then
    local n = '0'
    if fence then
      n = queueFence(fence, ARGV[7])
    end
    redis.call('ZADD', sem, string.format('%d', now + ttl), token)
    if meta ~= '' then
      redis.call('HSET', hold, token, n .. '|' .. meta)
    else
      redis.call('HSET', hold, token, n)
    end
    if listed then
      redis.call('LREM', queue, 0, token)
    end
    if place then
      redis.call('DEL', wkey)
    end
    semSettle(sem, hold)
    return {1, ttl, tonumber(n), 0, 0}
  end
  if ahead >= free then
    pttl = soonest
  end
else
  local first = redis.call('ZRANGE', sem, 0, 0, 'WITHSCORES')
  if first[2] then
    pttl = math.max(tonumber(first[2]) - now, 0)
  end
end

if mode ~= '0' then
  local want = queueWant(ARGV[8], fence, meta)
  return queueJoin(queue, token, wkey, want, mode, lease, pttl, t)
end
return {0, pttl, 0, tonumber(t[1]), tonumber(t[2])}
