-- KEYS: job, active set, job pending. ARGV: reason, now_iso, now_ts, only_if_idle_since ('' =
-- unconditional), stalled flag. Fails an active job; with a cutoff, only if it is running and made no
-- progress since. A failed job with items still pending stays in the active set: the lease sweep
-- sends those again until each has an outcome (they were accepted; they are still scanned).
local f = redis.call('HMGET', KEYS[1], 'status', 'last_update_ts', 'created_ts', 'job_id')
if f[1] ~= 'running' and f[1] ~= 'paused' then return 0 end
if ARGV[4] ~= '' then
  if f[1] ~= 'running' then return 0 end
  local last = tonumber(f[2] or '') or tonumber(f[3] or '') or 0
  if last > tonumber(ARGV[4]) then return 0 end
end
redis.call('HSET', KEYS[1], 'status', 'failed', 'failure_reason', ARGV[1], 'paused', '0', 'stalled', ARGV[5],
           'finished', ARGV[2], 'finished_ts', ARGV[3], 'last_update', ARGV[2], 'last_update_ts', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'control_rev', 1)
if redis.call('HLEN', KEYS[3]) == 0 then redis.call('SREM', KEYS[2], f[4] or '') end
return 1
