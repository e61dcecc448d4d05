-- KEYS: the job's pending hash, its due zset, and (jobs only) the dead letters hash.
-- ARGV: now, new lease deadline, limit.
-- Takes the pending items whose lease passed, renews their lease (so replicas sweeping at once send
-- each once) and returns their task JSON; a lease without a pending item is dropped. An item with a
-- dead letter is renewed but not returned: its outcome (a result the result step could not store,
-- its action perhaps applied) waits in the letter, which requeueing sends on; scanning it again
-- would store a read error over it.
local letters = KEYS[3]
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local task = redis.call('HGET', KEYS[1], id)
  if task then
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    if not letters or redis.call('HEXISTS', letters, id) == 0 then
      out[#out + 1] = task
    end
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return out
