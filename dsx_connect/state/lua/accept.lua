-- Records accepted scan requests once each: a request counts for its job only when neither its
-- state nor its result nor its bit in the job's done bitmap exists yet, so a batch the connector
-- resubmits (its answer was lost when the core died) is queued again but never counted twice.
-- A new request is also kept in its job's pending hash until its result is stored, with a lease in the
-- job's due zset, so that the sweep can send again an item no worker took in time (jobs.recovery).
-- KEYS: none (built from the prefix). ARGV: prefix, ttl, now_iso, now_ts, lease deadline, then 8 values
-- per request: id, job_id, location, connector_uuid, accepted_at, status, task JSON, done bit (0: none)
local prefix, ttl, now_iso, now_ts, due = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local results, counts = prefix .. ':results', {}
for i = 6, #ARGV, 8 do
  local id, job_id, bit = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 7])
  local state = prefix .. ':req:' .. id
  local finished = bit > 0 and redis.call('GETBIT', prefix .. ':job:' .. job_id .. ':done', bit) == 1
  if not finished and redis.call('EXISTS', state) == 0 and redis.call('HEXISTS', results, id) == 0 then
    redis.call('HSET', state, 'status', ARGV[i + 5], 'job_id', job_id, 'location', ARGV[i + 2],
               'connector_uuid', ARGV[i + 3], 'accepted_at', ARGV[i + 4])
    redis.call('EXPIRE', state, ttl)
    redis.call('HSET', prefix .. ':job:' .. job_id .. ':pending', id, ARGV[i + 6])
    redis.call('ZADD', prefix .. ':job:' .. job_id .. ':due', due, id)
    counts[job_id] = (counts[job_id] or 0) + 1
  end
end
local out = {}
for job_id, n in pairs(counts) do
  local job = prefix .. ':job:' .. job_id
  redis.call('HINCRBY', job, 'accepted', n)
  redis.call('EXPIRE', job .. ':pending', ttl)
  redis.call('EXPIRE', job .. ':due', ttl)
  redis.call('HSET', job, 'last_update', now_iso, 'last_update_ts', now_ts)
  out[#out + 1] = job_id
  out[#out + 1] = n
end
return out
