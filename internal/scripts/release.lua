-- Release a lock, handing it to the first live waiter in its queue.
-- KEYS[1] lock key; KEYS[2], KEYS[3] (optional, together) its waiter queue
-- and fencing counter. ARGV[1] token; ARGV[2] prefix of waiter keys;
-- ARGV[3] channel to announce a hand-over on; ARGV[4] "leave" when a waiter
-- gives up: take it out of the queue first, for good (its waiter key
-- becomes "-" for ARGV[5] ms, so a join that arrives late is refused);
-- ARGV[6] how long an unused fencing counter lives, in ms; ARGV[7] how
-- long a hand-over's claim lasts, in ms.
--
-- When the key holds the token, it goes to the next waiter, or is deleted
-- when nobody waits. A hand-over sets the key to the waiter's token for a
-- short claim, the smaller of the waiter's ttl and ARGV[7], then PUBLISHes
-- it (see handover in wire.go); the waiter confirms by setting the expiry
-- to its ttl. A waiter that died or cannot be reached never confirms: the
-- key frees when the claim ends, and the next waiter takes it. Returns 1
-- if the key held the token, else 0.
local lock, queue, fence = KEYS[1], KEYS[2], KEYS[3]
if queue and ARGV[4] == 'leave' then
  redis.call('LREM', queue, 0, ARGV[1])
  redis.call('SET', ARGV[2] .. ARGV[1], '-', 'PX', ARGV[5])
end
local v = redis.call('GET', lock)
if v ~= ARGV[1] and not (v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. '|') then
  return 0
end
if queue then
  for _ = 1, 100 do
    local nxt = redis.call('LPOP', queue)
    if not nxt then
      break
    end
    local wkey = ARGV[2] .. nxt
    local want = redis.call('GET', wkey)
    if want and want ~= '-' then
      redis.call('DEL', wkey)
      -- want is ttl[:f][|metadata]
      local ttl, fenced, meta = string.match(want, '^(%d+)(:?f?)(.*)$')
      local n = '0'
      if fenced == ':f' then
        if redis.call('EXISTS', fence) == 1 then
          -- %d, not tostring: Redis's Lua prints a number this large
          -- as 1.79e+15, which no reader parses.
          n = string.format('%d', redis.call('INCR', fence))
        else
          local t = redis.call('TIME')
          n = t[1] .. string.format('%06d', tonumber(t[2]))
          redis.call('SET', fence, n)
        end
        redis.call('PEXPIRE', fence, ARGV[6])
      end
      local claim = tonumber(ARGV[7])
      if tonumber(ttl) < claim then
        claim = tonumber(ttl)
      end
      redis.call('SET', lock, nxt .. meta, 'PX', claim)
      local t = redis.call('TIME')
      redis.call('PUBLISH', ARGV[3], nxt .. ':' .. t[1] .. ':' .. t[2] .. ':' .. n)
      return 1
    end
  end
end
redis.call('DEL', lock)
return 1
