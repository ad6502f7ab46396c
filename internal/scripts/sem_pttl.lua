-- KEYS[1] the semaphore; ARGV[1] token. Returns what is left of the
-- token's permit in ms if it holds a live one, else -3. Writes nothing.
local now = semNow()
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) > now then
  return tonumber(s) - now
end
return -3
