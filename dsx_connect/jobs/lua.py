"""Lua scripts of the job store: each one reads and updates a job hash atomically (standalone Redis).

Every control change (pause, resume, cancel, enqueue_done, fail) bumps the hash's ``control_rev``;
with the counters that only grow (``accepted``, ``processed``, ``skipped``) it makes a job's ``rev``,
which increases with every change a reader can see (SSE event ids, ``job_view``).
"""

# Marks the job completed once enumeration is done and every accepted item has a result.
# Expects `job` (key), `now_iso`, `now_ts` locals. Shared by the result script and enqueue_done.
COMPLETE_CHECK_LUA = """
local function complete_if_done(job, now_iso, now_ts)
  local f = redis.call('HMGET', job, 'status', 'enqueue_done', 'reported_total', 'accepted', 'processed', 'skipped')
  if f[1] ~= 'running' and f[1] ~= 'paused' then return 0 end
  if f[2] ~= '1' then return 0 end
  local total = math.max(tonumber(f[3] or '0') or 0, tonumber(f[4] or '0') or 0)
  local done = (tonumber(f[5] or '0') or 0) + (tonumber(f[6] or '0') or 0)
  if done >= total then
    redis.call('HSET', job, 'status', 'completed', 'finished', now_iso, 'finished_ts', now_ts,
               'paused', '0', 'last_update', now_iso, 'last_update_ts', now_ts)
    redis.call('DEL', job .. ':pending', job .. ':due')
    return 1
  end
  return 0
end
"""

ENQUEUE_DONE_LUA = (
    COMPLETE_CHECK_LUA
    + """
-- KEYS: job, active set. ARGV: reported total, now_iso, now_ts, failure reason ('' = none)
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'enqueue_done', '1', 'reported_total', ARGV[1], 'enumeration_finished', ARGV[2],
           'last_update', ARGV[2], 'last_update_ts', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'control_rev', 1)
if ARGV[4] ~= '' then
  local status = redis.call('HGET', KEYS[1], 'status')
  if status == 'running' or status == 'paused' then
    redis.call('HSET', KEYS[1], 'status', 'failed', 'failure_reason', ARGV[4], 'paused', '0',
               'finished', ARGV[2], 'finished_ts', ARGV[3])
    redis.call('SREM', KEYS[2], redis.call('HGET', KEYS[1], 'job_id') or '')
    return 2
  end
  return 0
end
return complete_if_done(KEYS[1], ARGV[2], ARGV[3])
"""
)

# KEYS: job, active set. ARGV: action, now_iso, now_ts. Returns {code, status before}.
TRANSITION_LUA = """
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
"""

# KEYS: job, active set. ARGV: reason, now_iso, now_ts, only_if_idle_since ('' = unconditional),
# stalled flag. Fails an active job; with a cutoff, only if it is running and made no progress since.
FAIL_LUA = """
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
redis.call('SREM', KEYS[2], f[4] or '')
return 1
"""

# Records accepted scan requests once each: a request counts for its job only when neither its
# state nor its result exists yet, so a batch the connector resubmits (its answer was lost when the
# core died) is queued again but never counted twice.
# A new request is also kept in its job's pending hash until its result is stored, with a lease in the
# job's due zset, so that the sweep can send again an item no worker took in time (jobs.recovery).
# KEYS: none (built from the prefix). ARGV: prefix, ttl, now_iso, now_ts, lease deadline, then 7 values
# per request: id, job_id, location, connector_uuid, accepted_at, status, task JSON
ACCEPT_LUA = """
local prefix, ttl, now_iso, now_ts, due = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local results, counts = prefix .. ':results', {}
for i = 6, #ARGV, 7 do
  local id, job_id = ARGV[i], ARGV[i + 1]
  local state = prefix .. ':req:' .. id
  if redis.call('EXISTS', state) == 0 and redis.call('HEXISTS', results, id) == 0 then
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
"""

SKIP_LUA = """
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
"""

# KEYS: the job's pending hash, its due zset. ARGV: now, new lease deadline, limit.
# Takes the pending items whose lease passed, renews their lease (so replicas sweeping at once send
# each once) and returns their task JSON; a lease without a pending item is dropped.
CLAIM_EXPIRED_LUA = """
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
"""
