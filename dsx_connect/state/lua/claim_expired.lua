-- KEYS: the job's pending hash, its due zset. ARGV: now, new lease deadline, limit.
-- Takes the pending items whose lease passed, renews their lease (so replicas sweeping at once send
-- each once) and returns their task JSON; a lease without a pending item is dropped.
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local task = redis.call('HGET', KEYS[1], id)
  if task then
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    out[#out + 1] = task
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return out
