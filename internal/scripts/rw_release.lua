-- Release a read or write lock, handing it on: see rw_common.lua for the
-- keys. ARGV[1] token; ARGV[2] prefix of waiter keys; ARGV[3] channel to
-- announce hand-overs on; ARGV[4] "leave" when a waiter gives up: take it
-- out of the queue first, for good (its waiter key becomes "-" for ARGV[5]
-- ms, so a join that arrives late is refused); ARGV[6] how long an unused
-- fencing counter lives, in ms; ARGV[7] "r" for a read lock, "w" for a
-- write lock.
--
-- A writer's release deletes the key; the last reader's release empties
-- the readers. Then the free lock goes to the queue's head (handOver): a
-- writer alone, or all the live readers ahead of the first live writer
-- together, each told on the channel. A reader's release while others
-- still read hands nothing to a writer; it may let in readers at the head
-- of the queue (none queue there but after a writer ahead of them left).
-- Returns 1 if the token held the lock, else 0.
local token, wprefix, channel, life = ARGV[1], ARGV[2], ARGV[3], ARGV[6]
if ARGV[4] == 'leave' then
  redis.call('LREM', queue, 0, token)
  redis.call('SET', wprefix .. token, '-', 'PX', ARGV[5])
end
purge()
if ARGV[7] == 'w' then
  if not holds(redis.call('GET', lock), token) then
    if ARGV[4] == 'leave' then
      syncMark()
      handOver(wprefix, channel, life) -- a writer that left may have held readers back
    end
    return 0
  end
  redis.call('DEL', lock)
else
  if not redis.call('ZSCORE', readers, token) then
    syncMark() -- the readers' lease may have ended: drop the marker
    if ARGV[4] == 'leave' then
      handOver(wprefix, channel, life) -- a writer that left may have held readers back
    end
    return 0
  end
  redis.call('ZREM', readers, token)
  redis.call('HDEL', rmeta, token)
  syncMark()
end
handOver(wprefix, channel, life)
return 1
