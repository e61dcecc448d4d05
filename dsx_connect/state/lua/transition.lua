-- KEYS: job, active set. ARGV: action, now_iso, now_ts. Returns {code, status before}.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {-1, ''} end
local action, now_iso, now_ts = ARGV[1], ARGV[2], ARGV[3]
local common = {'last_update', now_iso, 'last_update_ts', now_ts}
if action == 'pause' and status == 'running' then
  redis.call('HSET', KEYS[1], 'status', 'paused', 'paused', '1', unpack(common))
elseif action == 'resume' and status == 'paused' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'paused', '0', unpack(common))
elseif action == 'cancel' and (status == 'running' or status == 'paused') then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'cancel', '1', 'paused', '0',
             'finished', now_iso, 'finished_ts', now_ts, unpack(common))
  redis.call('SREM', KEYS[2], redis.call('HGET', KEYS[1], 'job_id') or '')
else
  return {0, status}
end
redis.call('HINCRBY', KEYS[1], 'control_rev', 1)
return {1, status}
