-- Shared head of the read-write lock's scripts (rw_*.lua), prepended to
-- each of them (see rwlock.go in this package), after the waiter-queue
-- protocol (queue_handover.lua, queue_common.lua).
--
-- KEYS, in every rw script: KEYS[1] the lock key (the write lock; while
-- readers hold, a marker); KEYS[2] the readers, a sorted set of tokens
-- scored by their expiry in the server's clock, in ms; KEYS[3] the
-- readers' metadata, a hash token -> metadata; KEYS[4] the read-write
-- waiter queue, a list of tokens; KEYS[5] the fencing counter. All five
-- hash to the lock key's slot (see keys.go).
--
-- The lock key holds a writer's token (then "|" and metadata) with the
-- writer's TTL, exactly as a mutex's key; or, while readers hold, MARK with
-- the expiry of the latest reader, so that anything that looks only at
-- the key (a plain Obtain of the same name, Inspect, the relock command)
-- sees the name taken for as long as some reader may still hold it. MARK's
-- token part is no valid token (Attach refuses it), so nothing but these
-- scripts deletes it.
--
-- A waiter key (ARGV prefix .. token) holds claim ":" kind [":f"] ["|" meta]:
-- the hand-over claim in ms, "r" for a reader or "w" for a writer, ":f"
-- when it wants a fencing number, and its metadata; "-" is a tombstone
-- (queue_common.lua's protocol, the claim carrying the kind).
local lock, readers, rmeta, queue, fence = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local MARK = 'rw:readers|readers of a read-write lock'

local clock = redis.call('TIME')
-- now is the server's clock in ms, read once per script.
local now = queueMs(clock)

-- holds reports whether the lock key's value v is the writer token's.
local function holds(v, token)
  return v == token or (v and string.sub(v, 1, #token + 1) == token .. '|')
end

-- purge drops the readers whose lease has ended, and their metadata.
local function purge()
  local gone = redis.call('ZRANGEBYSCORE', readers, '-inf', now)
  if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', readers, '-inf', now)
    for i = 1, #gone, 500 do
      redis.call('HDEL', rmeta, unpack(gone, i, math.min(i + 499, #gone)))
    end
  end
end

-- readerLeft is how many ms the latest live reader has left, or 0 when
-- none reads.
local function readerLeft()
  local top = redis.call('ZRANGE', readers, -1, -1, 'WITHSCORES')
  if #top == 0 then
    return 0
  end
  return math.max(tonumber(top[2]) - now, 1)
end

-- syncMark makes the lock key, the readers' set and their metadata
-- expire with the latest reader, and deletes the marker once nobody
-- reads. A writer's key is never touched (no writer holds while readers
-- do; a key set from outside stays as it is).
local function syncMark()
  local left = readerLeft()
  local v = redis.call('GET', lock)
  if left == 0 then
    if v == MARK then
      redis.call('DEL', lock)
    end
    redis.call('DEL', readers, rmeta)
    return
  end
  if not v or v == MARK then
    redis.call('SET', lock, MARK, 'PX', left)
  end
  redis.call('PEXPIRE', readers, left)
  if redis.call('EXISTS', rmeta) == 1 then
    redis.call('PEXPIRE', rmeta, left)
  end
end

-- addReader makes token a reader for ms, with meta ("" for none).
local function addReader(token, ms, meta)
  redis.call('ZADD', readers, now + tonumber(ms), token)
  if meta ~= '' then
    redis.call('HSET', rmeta, token, meta)
  end
end

-- parseWant splits a waiter key's value (queueParse, kinded): claim,
-- kind, fenced, meta (without its "|", "" for none).
local function parseWant(want)
  local claim, fenced, meta, kind = queueParse(want, true)
  if meta and string.sub(meta, 1, 1) == '|' then
    meta = string.sub(meta, 2)
  end
  return claim, kind, fenced, meta or ''
end

-- handOver gives a free lock (no writer; readers perhaps) to the queue's
-- head: a writer alone, once nobody reads, or every live reader ahead of
-- the first live writer, together. Each gets the claim in its waiter key
-- and a hand-over announcement on ARGV channel (queueAnnounce); a writer
-- draws a fencing number from the counter, a reader reads it (queueFence,
-- peek), if it wants one. Waiters that left or stopped renewing are
-- dropped on the way. At most 1000 entries are looked at per call.
local function handOver(wprefix, channel, life)
  local v = redis.call('GET', lock)
  if v and v ~= MARK then
    return -- a writer holds (or a key set from outside)
  end
  local woke = 0
  for _ = 1, 1000 do
    local nxt = redis.call('LINDEX', queue, 0)
    if not nxt then
      break
    end
    local wkey = wprefix .. nxt
    local want = redis.call('GET', wkey)
    if not want or want == '-' then
      redis.call('LPOP', queue)
    else
      local claim, kind, fenced, meta = parseWant(want)
      if not claim then
        redis.call('LPOP', queue) -- not ours to read: drop it
      elseif kind == 'w' then
        if woke > 0 or redis.call('EXISTS', lock) == 1 or redis.call('ZCARD', readers) > 0 then
          break -- readers hold: the last of them hands it on
        end
        redis.call('LPOP', queue)
        redis.call('DEL', wkey)
        local n = '0'
        if fenced then
          n = queueFence(fence, life, clock)
        end
        local value = nxt
        if meta ~= '' then
          value = nxt .. '|' .. meta
        end
        redis.call('SET', lock, value, 'PX', claim)
        queueAnnounce(channel, nxt, n, clock)
        return
      else
        redis.call('LPOP', queue)
        redis.call('DEL', wkey)
        local n = '0'
        if fenced then
          n = queueFence(fence, life, clock, true)
        end
        addReader(nxt, claim, meta)
        queueAnnounce(channel, nxt, n, clock)
        woke = woke + 1
      end
    end
  end
  if woke > 0 then
    syncMark()
  end
end
