-- Obtain a read or write lock, or queue for it: obtain.lua's contract
-- (ARGV, replies, and queue_common.lua's waiter-key, lease, claim and
-- tombstone protocol), for the keys described in rw_common.lua.
-- ARGV[1] token; ARGV[2] ttl in ms; ARGV[3] queue mode: "0" do not queue,
-- "1" join the queue, "2" renew our place (never re-creates it); ARGV[4]
-- prefix of waiter keys; ARGV[5] waiter key lifetime in ms; ARGV[6]
-- metadata ("" for none); ARGV[7] how long an unused fencing counter
-- lives, in ms; ARGV[8] the hand-over claim in ms; ARGV[9] ("" for none)
-- when our place must end at the latest, in the server's time in ms (past
-- it a join or renewal is a plain try); ARGV[10] "r" for a read lock, "w"
-- for a write lock; ARGV[11] "f" to draw a fencing number.
--
-- The policy: writers are preferred, and the queue is FIFO.
--   - A writer is admitted when no writer holds, no live reader holds, and
--     no live waiter (reader or writer) is queued ahead of it.
--   - A reader is admitted when no writer holds and no live writer is
--     queued ahead of it: so a queued writer holds back every reader that
--     comes after it, and is not starved by a stream of readers; it waits
--     only for the readers that held when it queued.
-- The release script hands a free lock on in queue order: to a writer
-- alone, or to all the live readers ahead of the first live writer at once.
--
-- A renewal takes a free lock only while its place is live (see
-- obtain.lua). Every key written expires: the lock key and the readers
-- with the latest holder, a waiter key after ARGV[5] ms at most, the queue
-- no earlier than its last waiter key, the counter after ARGV[7] ms.
--
-- Returns {status, pttl, fence, seconds, microseconds}, as obtain.lua:
--   1 the token holds the lock (set here, set by an earlier run of the same
--     call, or handed to us: its expiry is set to ttl here, which confirms
--     a hand-over's claim); pttl is ours, fence the fencing number (a
--     writer's: the counter after its increment; a reader's: the counter);
--   0 taken, not queued; 2 taken or held back by a waiter ahead, queued;
--   3 our place had lapsed (a renewal): join again; 4 this token left the
--   queue for good: nothing was written.
-- In statuses 0, 2 and 3, pttl is when to look again at the latest: the
-- writer's PTTL, the latest reader's, or what is left of the lease of the
-- waiter ahead; seconds and microseconds are the server's clock.
-- A key of another type raises WRONGTYPE before anything is written.
local token, ttl, mode, wprefix, meta = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[6]
local reading, fenced = ARGV[10] == 'r', ARGV[11] == 'f'
local wkey = wprefix .. token
local lease = tonumber(ARGV[5])
local value = token
if meta ~= '' then
  value = token .. '|' .. meta
end

-- Type checks first: nothing is written before a WRONGTYPE.
local v = redis.call('GET', lock)
redis.call('ZCARD', readers)
redis.call('HLEN', rmeta)
redis.call('LLEN', queue)
purge()
if v == MARK and redis.call('ZCARD', readers) == 0 then
  redis.call('DEL', lock) -- the last reader's lease ended a moment ago
  v = false
end

-- The token holds the lock already. (A queue entry whose waiter key is
-- gone is dead: it is dropped when it reaches the head.)
local function ours()
  if mode ~= '0' then
    redis.call('DEL', wkey)
  end
  local n = 0
  if fenced then
    n = tonumber(redis.call('GET', fence) or '0')
  end
  return {1, tonumber(ttl), n, 0, 0}
end

if not reading and holds(v, token) then
  redis.call('PEXPIRE', lock, ttl)
  return ours()
end
if reading and redis.call('ZSCORE', readers, token) then
  addReader(token, ttl, meta)
  syncMark()
  return ours()
end

-- Our place: the waiter key's value, nil when we have none.
local place
place, mode, lease = queuePlace(queue, wkey, mode, lease, ARGV[9], now)
if place == '-' then
  return {4, -1, 0, 0, 0}
end

local pttl = -1
local free
if reading then
  free = not v or v == MARK
  if v then
    pttl = redis.call('PTTL', lock)
  end
else
  free = not v and redis.call('ZCARD', readers) == 0
  if v then
    pttl = redis.call('PTTL', lock)
  elseif not free then
    pttl = readerLeft() -- the marker was deleted from outside
  end
end

if free then
  -- Who queues ahead of us: a writer waits for every live waiter ahead,
  -- a reader for live writers only. Dead entries at the head are dropped.
  local ahead = false
  local head = true -- no live entry seen yet
  local list = redis.call('LRANGE', queue, 0, 999)
  local seen = #list < 1000 -- the whole queue, or up to our own entry
  for _, tok in ipairs(list) do
    if tok == token then
      seen = true
      break
    end
    local w = redis.call('GET', wprefix .. tok)
    if not w or w == '-' then
      if head then
        redis.call('LPOP', queue)
      end
    else
      local _, kind = parseWant(w)
      head = false
      if not reading or kind ~= 'r' then
        ahead = true
        -- Look again when its lease ends, should it not come for the lock.
        local left = redis.call('PTTL', wprefix .. tok)
        if pttl < 0 or left < pttl then
          pttl = left
        end
        break
      end
    end
  end
  if not seen and not ahead then
    ahead = true -- past the first 1000 entries: wait for a hand-over
  end
  -- A renewal whose place is gone (consumed by a hand-over, or lapsed)
  -- does not take it: it reports the lapse, and the waiter joins again.
  if not ahead and (mode ~= '2' or place) then
    local n = 0
    if reading then
      if fenced then
        n = tonumber(queueFence(fence, ARGV[7], clock, true)) -- the last writer's
      end
      addReader(token, ttl, meta)
      syncMark()
    else
      if fenced then
        n = tonumber(queueFence(fence, ARGV[7], clock))
      end
      redis.call('SET', lock, value, 'PX', ttl)
    end
    if place then
      redis.call('DEL', wkey) -- our entry is now dead
    end
    return {1, tonumber(ttl), n, 0, 0}
  end
end

if mode ~= '0' then
  local want = queueWant(ARGV[8] .. ':' .. ARGV[10], fenced, meta)
  return queueJoin(queue, token, wkey, want, mode, lease, pttl, clock)
end
return {0, pttl, 0, tonumber(clock[1]), tonumber(clock[2])}
