-- Release a lock, handing it to the first live waiter in its queue (the
-- hand-over of queue_handover.lua: see the line that names it below).
-- Two forms:
--   full:  KEYS[1] lock key; KEYS[2], KEYS[3] (optional, together) its
--          waiter queue and fencing counter. ARGV[1] token; ARGV[2] prefix
--          of waiter keys; ARGV[3] channel to announce a hand-over on;
--          ARGV[4] "leave" when a waiter gives up: take it out of the queue
--          first, for good (its waiter key becomes "-" for ARGV[5] ms, so a
--          join that arrives late is refused); ARGV[6] how long an unused
--          fencing counter lives, in ms.
--   short: KEYS as in the full form; ARGV[1] token, alone. The waiter
--          prefix and channel are named after the queue (see keys.go:
--          P.."{"..tag.."}:relock:q:"..N, whose first "}:relock:" follows
--          the tag; they differ only in the role, "w:"..N..":" and "c:"),
--          only when a waiter is served, and a fencing counter lives
--          86400000 ms (fenceLife in paths.go). A release of a lock nobody
--          waits for thus carries the keys and the token, as a plain
--          compare-and-delete does, and costs the server one LPOP more.
-- Releases of earlier versions send the full form; this script serves both.
--
-- When the key holds the token, it goes to the next waiter (SET, with an
-- expiry the ttl in the waiter's key from now, as an absolute time, then
-- PUBLISH the hand-over "token:seconds:microseconds:fence", where seconds
-- and microseconds are that expiry in the server's clock: see handover in
-- wire.go; releases before this one announced the time of the hand-over,
-- which a waiter reads as an expiry already past), or is deleted when
-- nobody waits. Waiters put a short claim in
-- their key, not their ttl, and confirm it to their ttl once woken, so one
-- that died keeps the lock only for its claim. (Waiters of versions before
-- the claim put their ttl, and get it.) Returns 1 if the key held the
-- token, else 0.
local lock, queue, fence = KEYS[1], KEYS[2], KEYS[3]
local wprefix, channel, fenceLife = ARGV[2], ARGV[3], ARGV[6]
if queue and ARGV[4] == 'leave' then
  redis.call('LREM', queue, 0, ARGV[1])
  redis.call('SET', ARGV[2] .. ARGV[1], '-', 'PX', ARGV[5])
end
local v = redis.call('GET', lock)
if v ~= ARGV[1] and not (v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. '|') then
  return 0
end
local nxt = queue and redis.call('LPOP', queue)
if not nxt then
  redis.call('DEL', lock) -- nobody waits
  return 1
end
-- Someone may wait: hand the lock over. queue_handover.lua's functions are
-- inserted at the next line (see withHandover in scripts.go), not at the
-- top, so that a release that found nobody waiting returned above without
-- creating them (a closure each, on every run).
-- QUEUE_HANDOVER: replaced by queue_handover.lua
if not wprefix then
  -- The short form: name the waiter keys and channel after the queue.
  local i = string.find(queue, '}:relock:q:', 1, true)
  local base, name = string.sub(queue, 1, i + 8), string.sub(queue, i + 11)
  wprefix, channel, fenceLife = base .. 'w:' .. name .. ':', base .. 'c:' .. name, '86400000'
end
for i = 1, 100 do -- at most 100 entries, the one popped above the first
  if i > 1 then
    nxt = redis.call('LPOP', queue)
    if not nxt then
      break
    end
  end
  local want = queueTake(wprefix .. nxt)
  if want then
    local claim, fenced, meta = queueParse(want)
    local n = '0'
    if fenced then
      n = queueFence(fence, fenceLife)
    end
    -- The claim ends at an absolute time, which the announcement carries
    -- in place of the hand-over's: the waiter can rely on the lock until
    -- then by its own clock, before its confirmation answers
    -- (takeOverEarly in client.go).
    -- SET with PX first, so that the key expires whatever comes next; a
    -- Redis user not allowed PEXPIREAT (an ACL written for earlier
    -- versions: docs/permissions.md) keeps that expiry, and the time of
    -- the hand-over is announced instead, which makes the waiter confirm
    -- the claim before it relies on it.
    local ends, at = queueClaimEnds(claim)
    redis.call('SET', lock, nxt .. meta, 'PX', claim)
    local r = redis.pcall('PEXPIREAT', lock, ends)
    if type(r) == 'table' and r.err then
      at = nil
    end
    queueAnnounce(channel, nxt, n, at)
    return 1
  end
end
redis.call('DEL', lock)
return 1
