-- KEYS[1] lock key; ARGV[1] token; ARGV[2] new ttl in ms.
-- Sets the expiry only if the key holds the token (alone, or followed by
-- "|" and metadata); returns 1 if set, else 0.
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] or (v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. '|') then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
