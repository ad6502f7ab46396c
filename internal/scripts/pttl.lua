-- KEYS[1] lock key; ARGV[1] token.
-- Returns the key's PTTL in ms if it holds the token (-1: no expiry), else -3.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PTTL', KEYS[1])
end
return -3
