-- Obtain a lock, or queue for it: the waiter-queue protocol of
-- queue_common.lua (prepended, with queue_handover.lua, to this file).
-- KEYS[1] lock key; KEYS[2] (optional) the lock's waiter queue, a list of
-- tokens; KEYS[3] (optional) its fencing counter.
-- ARGV[1] token; ARGV[2] ttl in ms; ARGV[3] queue mode: "0" do not queue,
-- "1" join the queue, "2" renew our place (never re-creates it); ARGV[4]
-- prefix of waiter keys (prefix..token holds the waiter's ttl, plus ":f"
-- when it wants a fencing number, and expires when the waiter stops
-- renewing it; "-" marks a waiter that left, for good); ARGV[5] waiter key
-- lifetime in ms; ARGV[6] metadata ("" for none): the key then holds
-- token.."|"..metadata; ARGV[7] how long an unused fencing counter lives,
-- in ms; ARGV[8] the ttl, in ms, that a release hands the lock over with
-- (it reads it in our waiter key): new waiters give a short claim, the
-- smaller of their ttl and a few hundred ms, which they confirm to their
-- ttl once woken (a try that finds the key ours sets its expiry to ttl);
-- so a waiter that died keeps a free lock for its claim only. ARGV[9]
-- (optional, "" for none) is when our place must end at the latest, in
-- the server's time in ms: a waiter asks for no place that a release
-- could hand the lock to too late for it to confirm before its call ends.
-- Past it, a join or renewal is a plain try (mode "0").
--
-- A renewal takes a free lock only while its place is live: renewals run
-- in the background while the waiter listens for a hand-over, so one may
-- arrive after a hand-over consumed its place and the waiter has since
-- released the lock; it then writes nothing.
--
-- Every key this script writes expires: the lock key after ttl, a waiter
-- key after ARGV[5] ms at most, the queue no earlier than its last waiter
-- key (each join or renewal extends it to that waiter key's lifetime
-- unless it lives longer), the
-- fencing counter after ARGV[7] ms.
--
-- Returns {status, pttl, fence, seconds, microseconds}, always five
-- integers (see obtainReply in wire.go):
--   1 the key holds the token: set here, set by an earlier run of the same
--     call whose reply was lost, or handed to us (a hand-over sets only a
--     short claim: its expiry is set to ttl here, which confirms it); pttl
--     is ours, fence the fencing number (0 without a counter);
--   0 taken (pttl is the holder's, -1 unknown), not queued;
--   2 taken or held for a waiter ahead, and we are queued;
--   3 our place had lapsed (a renewal): join again;
--   4 this token left the queue for good: nothing was written.
-- In statuses 0, 2 and 3, seconds and microseconds are the server's clock
-- (a waiter maps its call's deadline to it for ARGV[9]).
-- A join or renewal gets status 0 only past ARGV[9].
-- In statuses 0, 2 and 3, pttl is when to look again at the latest: the
-- holder's PTTL, or, when the key is free but a waiter ahead keeps it,
-- what is left of that waiter's lease.
-- A key of another type raises WRONGTYPE before anything is written.
local lock, queue, fence = KEYS[1], KEYS[2], KEYS[3]
local token, ttl, mode, meta = ARGV[1], ARGV[2], ARGV[3], ARGV[6]
local wkey = ARGV[4] .. token
local lease = tonumber(ARGV[5])
local value = token
if meta ~= '' then
  value = token .. '|' .. meta
end

local v = redis.call('GET', lock)
if v == token or v == value or (v and string.sub(v, 1, #token + 1) == token .. '|') then
  if mode ~= '0' then
    redis.call('DEL', wkey)
  end
  local n = 0
  if fence then
    n = tonumber(redis.call('GET', fence) or '0')
  end
  -- Ours: confirm it to the full ttl (a hand-over's claim is short), so
  -- the lock's validity counts from this try.
  redis.call('PEXPIRE', lock, ttl)
  return {1, tonumber(ttl), n, 0, 0}
end
-- Our place: the waiter key's value, nil when we have none.
local place
place, mode, lease = queuePlace(queue, wkey, mode, lease, ARGV[9])
if place == '-' then
  return {4, -1, 0, 0, 0}
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
      local w = redis.call('GET', ARGV[4] .. head)
      if w and w ~= '-' then
        ahead = true
        -- Look again when its lease ends, should it not come for the key.
        pttl = redis.call('PTTL', ARGV[4] .. head)
        break
      end
      redis.call('LPOP', queue) -- a waiter that left, or stopped renewing
    end
  end
  -- A renewal whose place is gone (consumed by a hand-over, or lapsed)
  -- does not take it: it reports the lapse, and the waiter joins again.
  if not ahead and (mode ~= '2' or place) then
    local n = 0
    if fence then
      n = tonumber(queueFence(fence, ARGV[7]))
    end
    redis.call('SET', lock, value, 'PX', ttl)
    if place then
      redis.call('DEL', wkey)
    end
    return {1, tonumber(ttl), n, 0, 0}
  end
end
if queue and mode ~= '0' then
  local want = queueWant(ARGV[8], fence, meta)
  return queueJoin(queue, token, wkey, want, mode, lease, pttl)
end
local t = redis.call('TIME')
return {0, pttl, 0, tonumber(t[1]), tonumber(t[2])}
