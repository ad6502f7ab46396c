-- The hand-over half of the waiter-queue protocol (see queue_common.lua
-- for the whole): the functions a release needs, and only those.
-- release.lua has this file alone, inserted after its short path (a lock
-- nobody waits for), which thus creates none of these closures; every
-- other script that queues or hands over has it prepended, in front of
-- queue_common.lua.

-- queueMs is the server's clock in ms, from t, a reply of TIME.
local function queueMs(t)
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- queueFence draws a fencing number from the counter at key fence, as a
-- string (%d, not tostring: Redis's Lua prints a number this large as
-- 1.79e+15, which no reader parses), and makes the counter expire after
-- life ms unused. A counter that is missing (first use, a server restarted
-- empty, or expired) starts at the server's clock in microseconds, t (a
-- reply of TIME; read when nil), so numbers keep increasing across a
-- restart that forgot it. peek (the read-write lock's readers) reads the
-- counter instead of incrementing it: the number of the last writer.
local function queueFence(fence, life, t, peek)
  local n
  if peek then
    n = redis.call('GET', fence)
    if n then
      n = string.format('%d', tonumber(n))
    end
  elseif redis.call('EXISTS', fence) == 1 then
    n = string.format('%d', redis.call('INCR', fence))
  end
  if not n then
    t = t or redis.call('TIME')
    n = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('SET', fence, n)
  end
  redis.call('PEXPIRE', fence, life)
  return n
end

-- queueParse splits a waiter key's value (see queueWant in
-- queue_common.lua): claim[:f][|metadata], or, kinded (the read-write
-- lock's), claim:kind[:f][|metadata]. Returns the claim (a string of
-- digits; nil when want is not of that form), whether a fencing number is
-- wanted, the rest (the metadata with its "|", "" for none) and the kind
-- ("r" or "w"; nil unless kinded).
local function queueParse(want, kinded)
  local claim, kind, f, rest
  if kinded then
    claim, kind, f, rest = string.match(want, '^(%d+):([rw])(:?f?)(.*)$')
  else
    claim, f, rest = string.match(want, '^(%d+)(:?f?)(.*)$')
  end
  return claim, f == ':f', rest, kind
end

-- queueTake consumes the place of a waiter taken off the queue, whose
-- waiter key is wkey: returns the key's value after deleting it, or nil
-- when the waiter left ("-") or stopped renewing (missing), its entry then
-- being dead.
local function queueTake(wkey)
  local want = redis.call('GET', wkey)
  if want and want ~= '-' then
    redis.call('DEL', wkey)
    return want
  end
  return nil
end

-- queueAnnounce tells the waiter token that the lock (or a permit) is now
-- its own, with fencing number n (a string, "0" for none), on channel:
-- token:seconds:microseconds:fence (see handover in wire.go), the time
-- being t (a reply of TIME; read when nil).
local function queueAnnounce(channel, token, n, t)
  t = t or redis.call('TIME')
  redis.call('PUBLISH', channel, token .. ':' .. t[1] .. ':' .. t[2] .. ':' .. n)
end

-- queueClaimEnds returns when a claim of claim ms (a string of digits)
-- given now ends, in the server's clock: as ms since the epoch (a string,
-- for PEXPIREAT), and as a reply of TIME, for queueAnnounce to carry in
-- place of the hand-over's time (the mutex's release: the waiter relies
-- on the claim until then before confirming it; see handover in wire.go).
local function queueClaimEnds(claim)
  local ends = queueMs(redis.call('TIME')) + tonumber(claim)
  return string.format('%d', ends),
    {string.format('%d', math.floor(ends / 1000)), string.format('%d', (ends % 1000) * 1000)}
end
