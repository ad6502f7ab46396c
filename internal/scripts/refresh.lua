-- KEYS[1] lock key; ARGV[1] token; ARGV[2] new ttl in ms.
-- Sets the expiry only if the key holds the token; returns 1 if set, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
