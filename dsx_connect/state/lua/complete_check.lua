-- Marks the job completed once enumeration is done and every accepted item has a result.
-- Takes the job hash, its pending hash and its due zset (keys the caller received as KEYS).
-- Shared by the result script, enqueue_done and the monitor job's roll-over.
local function complete_if_done(job, pending, due, now_iso, now_ts)
  local f = redis.call('HMGET', job, 'status', 'enqueue_done', 'reported_total', 'accepted', 'processed', 'skipped')
  if f[1] ~= 'running' and f[1] ~= 'paused' then return 0 end
  if f[2] ~= '1' then return 0 end
  local total = math.max(tonumber(f[3] or '0') or 0, tonumber(f[4] or '0') or 0)
  local done = (tonumber(f[5] or '0') or 0) + (tonumber(f[6] or '0') or 0)
  if done >= total then
    redis.call('HSET', job, 'status', 'completed', 'finished', now_iso, 'finished_ts', now_ts,
               'paused', '0', 'last_update', now_iso, 'last_update_ts', now_ts)
    redis.call('DEL', pending, due)
    return 1
  end
  return 0
end
