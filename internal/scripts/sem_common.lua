-- The semaphore's shared functions: semaphore.go prepends this file to
-- each sem_*.lua script (one Lua chunk each, so one EVALSHA), after the
-- waiter-queue protocol (queue_handover.lua, queue_common.lua).
--
-- A semaphore named N whose Redis key is K (N after the Client's prefix)
-- keeps (every key in K's hash slot: see keys.go):
--   K   a sorted set: one member per permit, the holder's token, scored
--       by the permit's expiry in the server's clock (ms since the epoch,
--       from TIME). A member whose score is not in the future is expired:
--       every script drops those before it counts, so an expired permit is
--       never counted, refreshed or confirmed. K itself expires with its
--       latest member (PEXPIREAT), so an abandoned semaphore disappears.
--   H   (role "sh") a hash: token -> fencing number, then "|" and the
--       holder's metadata if any; it expires with K.
--   L   (role "sl") the limit an operator stored (SetLimit), which
--       overrides every caller's; absent: each caller's own. No expiry.
--   the lock's queue (q), waiter keys (w), fencing counter (f) and
--   hand-over channel (c), with exactly the lock's protocol, the one in
--   queue_common.lua: a waiter key holds claim[:f][|metadata], "-" when
--   the waiter left; a hand-over publishes token:seconds:microseconds:fence.
--
-- Scripts that write and read TIME replicate their effects (the default
-- from Redis 7; asked for on Redis 5 and 6).
if redis.replicate_commands then
  redis.replicate_commands()
end

-- The server's clock in ms, and TIME's reply.
local function semNow()
  local t = redis.call('TIME')
  return queueMs(t), t
end

-- Drops the permits that expired by now, and their entries in hold. The
-- first command reads K: a key of another type raises WRONGTYPE here,
-- before anything is written.
local function semPurge(sem, hold, now)
  local gone = redis.call('ZRANGEBYSCORE', sem, '-inf', now)
  if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', sem, '-inf', now)
    for i = 1, #gone, 1000 do
      redis.call('HDEL', hold, unpack(gone, i, math.min(i + 999, #gone)))
    end
  end
end

-- Sets K's and H's expiry to K's latest permit's, or deletes them when no
-- permit is left.
local function semSettle(sem, hold)
  local last = redis.call('ZRANGE', sem, -1, -1, 'WITHSCORES')
  if last[2] then
    local at = string.format('%d', tonumber(last[2]))
    redis.call('PEXPIREAT', sem, at)
    redis.call('PEXPIREAT', hold, at)
  else
    redis.call('DEL', sem, hold)
  end
end

-- The limit in force: the stored one, else the caller's n.
local function semLimit(limkey, n)
  local s = redis.call('GET', limkey)
  if s then
    return tonumber(s), 1
  end
  return tonumber(n), 0
end

-- Hands the free permits (limit less the live ones) to the first live
-- waiters of the queue, in order, one each: a permit that expires at the
-- claim the waiter wrote in its waiter key (it confirms it to its ttl once
-- woken, so a waiter that died keeps the permit for its claim only), its
-- fencing number if it asked for one (from the counter fence, which lives
-- life ms unused), and the hand-over announced on the channel, as
-- release.lua does for a lock. Entries of waiters that left or
-- stopped renewing are dropped on the way. At most 100 entries a call.
local function semGrant(sem, queue, hold, fence, limit, now, wprefix, channel, life)
  local free = limit - redis.call('ZCARD', sem)
  local seen = 0
  while free > 0 and seen < 100 do
    seen = seen + 1
    local nxt = redis.call('LPOP', queue)
    if not nxt then
      break
    end
    local want = queueTake(wprefix .. nxt)
    if want and not redis.call('ZSCORE', sem, nxt) then
      local claim, fenced, meta = queueParse(want)
      local n = '0'
      if fenced then
        n = queueFence(fence, life)
      end
      redis.call('ZADD', sem, string.format('%d', now + tonumber(claim)), nxt)
      redis.call('HSET', hold, nxt, n .. meta)
      queueAnnounce(channel, nxt, n)
      free = free - 1
    end
  end
end

