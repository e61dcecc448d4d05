-- Count items of a cancelled job as skipped, once per scan request id: a redelivered batch (its
-- worker died before the ack) finds them marked and counts nothing again.
-- ARGV: prefix, ttl, now_iso, now_ts, job_id, then the request ids
local prefix, ttl, job_id = ARGV[1], tonumber(ARGV[2]), ARGV[5]
local results, n = prefix .. ':results', 0
for i = 6, #ARGV do
  local state = prefix .. ':req:' .. ARGV[i]
  local status = redis.call('HGET', state, 'status')
  if status ~= 'skipped' and status ~= 'completed' and redis.call('HEXISTS', results, ARGV[i]) == 0 then
    redis.call('HSET', state, 'status', 'skipped', 'job_id', job_id)
    redis.call('EXPIRE', state, ttl)
    n = n + 1
  end
  redis.call('HDEL', prefix .. ':job:' .. job_id .. ':pending', ARGV[i])
  redis.call('ZREM', prefix .. ':job:' .. job_id .. ':due', ARGV[i])
end
local job = prefix .. ':job:' .. job_id
if n > 0 then redis.call('HINCRBY', job, 'skipped', n) end
redis.call('HSET', job, 'last_update', ARGV[3], 'last_update_ts', ARGV[4])
return n
