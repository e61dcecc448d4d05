-- The connector's current monitor job, rolled over or created (dsx_connect.state.monitor_jobs).
-- Every key comes in KEYS (none is built here). The caller read the pointer and passes the job it
-- names (if any); when the pointer has moved since, nothing is written and the script returns
-- false: the caller reads the pointer again and retries. So it does when a new job is needed and
-- the candidate's key exists already (it would be written over: another job's items, owner and
-- counts taken into this connector's monitor job); the caller retries with another candidate.
-- KEYS: pointer, active set, jobs index, candidate job, then (when ARGV names one) the current job,
--       its pending hash and its due zset.
-- ARGV: expected current id ('' = none), candidate id, now_iso, now_ts, roll_s, retain_s,
--       connector uuid, connector name. Returns the current monitor job id (creating it).
local expected, candidate, now_iso, now_ts = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local roll_s, retain_s = tonumber(ARGV[5]), tonumber(ARGV[6])
local current = redis.call('GET', KEYS[1])
if (current or '') ~= expected then return false end
-- before any write (a rollover included): the candidate must be a new key
if redis.call('EXISTS', KEYS[4]) == 1 then return false end
if current then
  local job = KEYS[5]
  local f = redis.call('HMGET', job, 'status', 'created_ts', 'accepted')
  if f[1] == 'running' or f[1] == 'paused' then
    if tonumber(now_ts) - (tonumber(f[2] or '0') or 0) < roll_s then
      return current
    end
    -- rolled over: what it accepted is all it gets; it completes when those items have results
    redis.call('HSET', job, 'enqueue_done', '1', 'reported_total', f[3] or '0',
               'enumeration_finished', now_iso)
    redis.call('HINCRBY', job, 'control_rev', 1)
    complete_if_done(job, KEYS[6], KEYS[7], now_iso, now_ts)
  end
end
local job = KEYS[4]
redis.call('HSET', job, 'job_id', candidate, 'connector_uuid', ARGV[7], 'connector_name', ARGV[8],
           'kind', 'monitor', 'status', 'running', 'created', now_iso, 'created_ts', now_ts,
           'started', now_iso, 'started_ts', now_ts, 'last_update', now_iso, 'last_update_ts', now_ts)
redis.call('EXPIRE', job, retain_s)
redis.call('ZADD', KEYS[3], now_ts, candidate)
redis.call('SADD', KEYS[2], candidate)
redis.call('SET', KEYS[1], candidate, 'EX', retain_s)
return candidate
