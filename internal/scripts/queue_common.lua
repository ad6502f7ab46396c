-- The waiter-queue protocol, written once: the mutex (obtain.lua), the
-- semaphore (sem_*.lua, through sem_common.lua) and the read-write lock
-- (rw_*.lua, through rw_common.lua) have this file prepended to their
-- scripts (one Lua chunk each, so one EVALSHA), behind queue_handover.lua,
-- the hand-over half, which release.lua has alone.
--
-- The protocol, common to the three (versions interoperate on it: change
-- nothing in it without a new key or message format):
--   - A waiter queue is a list of tokens. A waiter's place is its waiter
--     key, the waiter key prefix .. token, which holds its want (see
--     queueWant) and expires after the waiter's lease unless renewed;
--     "-" (for a while) marks a waiter that left for good. An entry whose
--     waiter key is missing or "-" is dead, and is dropped on the way.
--   - A join (queue mode "1") writes the waiter key and appends the token;
--     a renewal (mode "2") rewrites a live waiter key only, and reports a
--     lapse (status 3) otherwise; past the end of the place (ARGV[9]) both
--     are a plain try (mode "0"). A token that left ("-") gets status 4
--     and writes nothing. The queue lives at least as long as every
--     waiter key in it.
--   - A hand-over consumes the waiter's place (DEL of its waiter key),
--     gives it the lock or permit for the claim in its want (it confirms it
--     to its ttl once woken), draws a fencing number if the want asks for
--     one, and announces it on the channel: queueTake, queueParse,
--     queueFence and queueAnnounce, in queue_handover.lua.

-- queueWant is a waiter key's value: claim (a string: the hand-over claim
-- in ms; the read-write lock's is claim .. ":" .. kind, kind "r" or "w"),
-- then ":f" when fenced (truthy: the waiter wants a fencing number), then
-- "|" .. meta unless meta (the waiter's metadata) is "". queueParse (in
-- queue_handover.lua) reads it back.
local function queueWant(claim, fenced, meta)
  local want = claim
  if fenced then
    want = want .. ':f'
  end
  if meta ~= '' then
    want = want .. '|' .. meta
  end
  return want
end

-- queuePlace reads our place, the waiter key wkey, for a join or renewal
-- (mode "1" or "2"; with mode "0" or no queue it reads nothing and returns
-- nil, mode, lease), and clamps our lease (ms) by deadline, the end of the
-- place in the server's ms (ARGV[9]; "" or nil for none), against now
-- (the server's ms; TIME is read when nil). Returns the waiter key's value
-- (nil when we have no place; "-" when this token left the queue for good:
-- the caller then replies status 4, {4, -1, 0, 0, 0}, having written
-- nothing), the mode ("0", a plain try, once the deadline leaves no lease)
-- and the lease. Reads only.
local function queuePlace(queue, wkey, mode, lease, deadline, now)
  if not queue or mode == '0' then
    return nil, mode, lease
  end
  local place = redis.call('GET', wkey)
  if place == '-' then
    return place, mode, lease
  end
  if deadline and deadline ~= '' then
    now = now or queueMs(redis.call('TIME'))
    local left = tonumber(deadline) - now
    if left < lease then
      lease = left
    end
    if lease <= 0 then
      mode = '0' -- too late for a place: a plain try
    end
  end
  return place, mode, lease
end

-- queueJoin ends an obtain that found the lock taken (or owed to a waiter
-- ahead) in queue mode "1" or "2": it writes our want in our waiter key
-- wkey for lease ms and, for a join, appends token to queue; a renewal
-- rewrites only a live place. It keeps the queue alive at least lease ms.
-- Returns obtain.lua's reply {status, pttl, 0, seconds, microseconds}:
-- status 2 (queued), or 3 when a renewal found its place gone; the clock is
-- t, a reply of TIME (read after the writes when nil).
local function queueJoin(queue, token, wkey, want, mode, lease, pttl, t)
  if mode == '2' then
    -- Renew only a live place: a renewal that arrives late (after a stall)
    -- never revives a waiter that has since given up.
    if not redis.call('SET', wkey, want, 'PX', lease, 'XX') then
      t = t or redis.call('TIME')
      return {3, pttl, 0, tonumber(t[1]), tonumber(t[2])}
    end
  else
    -- Join. A token listed twice (its place had lapsed) is harmless: the
    -- first entry to be served consumes the waiter key.
    redis.call('SET', wkey, want, 'PX', lease)
    redis.call('RPUSH', queue, token)
  end
  -- The queue outlives every waiter key in it, and no more.
  if redis.call('PTTL', queue) < lease then
    redis.call('PEXPIRE', queue, lease)
  end
  t = t or redis.call('TIME')
  return {2, pttl, 0, tonumber(t[1]), tonumber(t[2])}
end
