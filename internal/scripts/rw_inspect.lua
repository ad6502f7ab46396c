-- Inspect a read-write lock, whoever holds it: see rw_common.lua for the
-- keys. ARGV[1] prefix of waiter keys. Changes nothing.
-- Returns {value, pttl, fence, readers, waiters}: the lock key's value
-- (false when missing; the marker while readers hold), its PTTL in ms, the
-- fencing counter (0 without one), the live readers as a flat list of
-- token, ms left, metadata (at most 1000, latest expiry first), and the
-- live waiters in queue order as a flat list of token, kind ("r" or "w"),
-- metadata (at most the first 1000 entries are looked at).
-- A key of another type raises WRONGTYPE.
local v = redis.call('GET', lock)
local n = tonumber(redis.call('GET', fence) or '0')
local rs = {}
local live = redis.call('ZREVRANGEBYSCORE', readers, '+inf', '(' .. now, 'WITHSCORES', 'LIMIT', 0, 1000)
for i = 1, #live, 2 do
  rs[#rs + 1] = live[i]
  rs[#rs + 1] = tonumber(live[i + 1]) - now
  rs[#rs + 1] = redis.call('HGET', rmeta, live[i]) or ''
end
local ws = {}
for _, tok in ipairs(redis.call('LRANGE', queue, 0, 999)) do
  local w = redis.call('GET', ARGV[1] .. tok)
  if w and w ~= '-' then
    local claim, kind, _, meta = parseWant(w)
    if claim then
      ws[#ws + 1] = tok
      ws[#ws + 1] = kind
      ws[#ws + 1] = meta
    end
  end
end
return {v, redis.call('PTTL', lock), n, rs, ws}
