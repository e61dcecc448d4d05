-- Count items of a cancelled job as skipped, once per scan request id: a redelivered batch (its
-- worker died before the ack) finds them marked and counts nothing again. An item with a bit in the
-- job's done bitmap (dsx_connect.jobs.done) is marked there, else by its request state.
-- ARGV: prefix, ttl, now_iso, now_ts, job_id, then pairs of request id and done bit (0: none)
local prefix, ttl, job_id = ARGV[1], tonumber(ARGV[2]), ARGV[5]
local results, n = prefix .. ':results', 0
local job = prefix .. ':job:' .. job_id
local done = job .. ':done'
for i = 6, #ARGV, 2 do
  local id, bit = ARGV[i], tonumber(ARGV[i + 1])
  local state = prefix .. ':req:' .. id
  local status = redis.call('HGET', state, 'status')
  local finished = bit > 0 and redis.call('GETBIT', done, bit) == 1
  if not finished and status ~= 'skipped' and status ~= 'completed' and redis.call('HEXISTS', results, id) == 0 then
    if bit > 0 then
      redis.call('SETBIT', done, bit, 1)
      redis.call('DEL', state)
    else
      redis.call('HSET', state, 'status', 'skipped', 'job_id', job_id)
      redis.call('EXPIRE', state, ttl)
    end
    n = n + 1
  end
  redis.call('HDEL', job .. ':pending', id)
  redis.call('ZREM', job .. ':due', id)
end
if n > 0 then
  redis.call('HINCRBY', job, 'skipped', n)
  local job_ttl = redis.call('TTL', job)
  redis.call('EXPIRE', done, job_ttl > 0 and job_ttl or ttl)
end
redis.call('HSET', job, 'last_update', ARGV[3], 'last_update_ts', ARGV[4])
return n
