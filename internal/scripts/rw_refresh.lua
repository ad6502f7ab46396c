-- Refresh a read or write lock: see rw_common.lua for the keys. ARGV[1]
-- token; ARGV[2] new ttl in ms; ARGV[3] "r" or "w". Sets the expiry only
-- if the token holds a live lock of that kind (a writer: the key holds the
-- token; a reader: it is among the live readers, whose marker then follows
-- the latest of them); returns 1 if set, else 0. Confirms a hand-over's
-- claim too.
local token, ttl = ARGV[1], ARGV[2]
if ARGV[3] == 'w' then
  if holds(redis.call('GET', lock), token) then
    return redis.call('PEXPIRE', lock, ttl)
  end
  return 0
end
purge()
if not redis.call('ZSCORE', readers, token) then
  return 0
end
redis.call('ZADD', readers, 'XX', now + tonumber(ttl), token)
syncMark()
return 1
