-- KEYS[1] lock key; ARGV[1] token.
-- Returns the key's PTTL in ms if it holds the token (alone, or followed by
-- "|" and metadata; -1: no expiry), else -3.
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] or (v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. '|') then
  return redis.call('PTTL', KEYS[1])
end
return -3
