-- Release a lock, handing it to the first live waiter in its queue.
-- KEYS[1] lock key; KEYS[2], KEYS[3] (optional, together) its waiter queue
-- and fencing counter. ARGV[1] token; ARGV[2] prefix of waiter keys;
-- ARGV[3] channel to announce a hand-over on; ARGV[4] "leave" when a waiter
-- gives up: take it out of the queue first.
--
-- When the key holds the token, it goes to the next waiter (SET with the
-- waiter's ttl, PUBLISH "token:seconds:microseconds:fence"), or is deleted
-- when nobody waits. Returns 1 if the key held the token, else 0.
local lock, queue, fence = KEYS[1], KEYS[2], KEYS[3]
if queue and ARGV[4] == 'leave' then
  redis.call('LREM', queue, 0, ARGV[1])
  redis.call('DEL', ARGV[2] .. ARGV[1])
end
if redis.call('GET', lock) ~= ARGV[1] then
  return 0
end
if queue then
  for _ = 1, 100 do
    local nxt = redis.call('LPOP', queue)
    if not nxt then
      break
    end
    local want = redis.call('GETDEL', ARGV[2] .. nxt)
    if want then
      local ttl, fenced = string.match(want, '^(%d+)(:?f?)$')
      local n = '0'
      if fenced == ':f' then
        n = tostring(redis.call('INCR', fence))
      end
      redis.call('SET', lock, nxt, 'PX', ttl)
      local t = redis.call('TIME')
      redis.call('PUBLISH', ARGV[3], nxt .. ':' .. t[1] .. ':' .. t[2] .. ':' .. n)
      return 1
    end
  end
end
redis.call('DEL', lock)
return 1
