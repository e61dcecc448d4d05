-- KEYS: job, active set, job pending, job due. ARGV: reported total, now_iso, now_ts, failure reason ('' = none)
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'enqueue_done', '1', 'reported_total', ARGV[1], 'enumeration_finished', ARGV[2],
           'last_update', ARGV[2], 'last_update_ts', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'control_rev', 1)
if ARGV[4] ~= '' then
  local status = redis.call('HGET', KEYS[1], 'status')
  if status == 'running' or status == 'paused' then
    redis.call('HSET', KEYS[1], 'status', 'failed', 'failure_reason', ARGV[4], 'paused', '0',
               'finished', ARGV[2], 'finished_ts', ARGV[3])
    -- items still pending stay swept (sent again when their lease passes) until each has an outcome
    if redis.call('HLEN', KEYS[3]) == 0 then redis.call('SREM', KEYS[2], redis.call('HGET', KEYS[1], 'job_id') or '') end
    return 2
  end
  return 0
end
return complete_if_done(KEYS[1], KEYS[3], KEYS[4], ARGV[2], ARGV[3])
