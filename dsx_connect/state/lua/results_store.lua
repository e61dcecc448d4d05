-- One call stores a whole batch, and queues each newly stored event for the SIEM feed in the same
-- atomic step. Every key comes in KEYS (none is built here):
-- KEYS: results, results index, results seq, stats, dead letters, their index, their requeued leases,
--       then one index per verdict (ARGV names them in the same order), then 7 per group (the items
--       of one job and connector): job, job pending, job due, connector index, job index, job done
--       bitmap, job skipped bitmap; then one request state per item; then the feed's queue and state per destination
--       (pairs, to the end).
-- ARGV: retain, now_iso, now_ts, feed bound, tombstone ttl, accepting ('1': the items were not
--       recorded as accepted, see below), searched ('1': the verdict, connector and job indexes
--       are written; '0' where a SQL history answers searches and nothing reads them), verdict
--       count V, the V verdicts, group count G, item
--       count N, then 3 values per item: id, event, and its small values tab-separated in one
--       argument (a third of the arguments of one each): group (0-based), verdict, bytes, failed,
--       action, cached ('1': served by the unchanged-object index, counted as `cached`, its bytes
--       not as scanned), done bit (0: none)
-- A stored request keeps a tombstone past the result's own retention: its bit in the job's done
-- bitmap, expiring with the job (dsx_connect.jobs.done), or, without a bit, its request state
-- (status 'completed') for the request-state TTL. A bit too far past the bitmap's end to set
-- cheaply (done_fits.lua) counts as none: the item keeps its request state, and its job counts it
-- in 'done_spilled'. A redelivered or resubmitted item whose result retention already dropped is
-- still a duplicate, counted and fed to the SIEM once.
-- With accepting, the call also accepts each item it stores for the first time (the intake serving
-- unchanged items from the index: accepted and stored in one atomic step, never pending). An item
-- whose request state exists was accepted earlier (a resubmitted batch) and is not counted again.
local retain, now_iso, now_ts, feed_bound = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local tombstone_ttl = tonumber(ARGV[5])
local accepting = ARGV[6] == '1'
local searched = ARGV[7] == '1'
local nverdicts = tonumber(ARGV[8])
local results, index, seq_key, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local letters, letters_index, requeued = KEYS[5], KEYS[6], KEYS[7]
local by_verdict = {}  -- verdict -> its index key
for v = 1, nverdicts do by_verdict[ARGV[8 + v]] = KEYS[7 + v] end
local ngroups, nitems = tonumber(ARGV[9 + nverdicts]), tonumber(ARGV[10 + nverdicts])
local first_item_arg, first_group_key = 11 + nverdicts, 8 + nverdicts
local first_request_key = first_group_key + 7 * ngroups
local fed = {}
local stored, touched, top = {}, {}, nil
local indexes = {}  -- the connector and job indexes this call wrote to: trimmed below, on write
-- Writes that nothing in the loop reads back are gathered and sent once per key after it, many
-- members a call (a call per item each cost as much as the member): the sorted-set entries of
-- each newly stored result, and the pending and due entries it ends.
local added = {}    -- sorted set -> {score, member, ...}
local ended = {}    -- job pending hash -> {id, ...}
local undue = {}    -- job due set -> {id, ...}
-- results first stored by this call, in order (id -> {seq, verdict}): their verdict index entries
-- are written after the loop, so a replacement later in the same call moves the entry first
local fresh, fresh_ids = {}, {}
-- A job whose hash expired (a redelivered store, a dead letter requeued past the job's retention)
-- is not written again: its counters, done bitmap and completion would come back as a hash without
-- a status or a TTL. Its items' results are stored and counted in the stats; their tombstone is a
-- request state.
local live_jobs = {}
local function live(job)
  local known = live_jobs[job]
  if known == nil then
    known = redis.call('EXISTS', job) == 1
    live_jobs[job] = known
  end
  return known
end
local function gather(into, key, a, b)
  local list = into[key]
  if not list then list = {}; into[key] = list end
  list[#list + 1] = a
  if b ~= nil then list[#list + 1] = b end
end
local function send(cmd, key, list)  -- in slices: Lua's unpack takes at most ~8000 values
  for i = 1, #list, 2000 do
    redis.call(cmd, key, unpack(list, i, math.min(i + 1999, #list)))
  end
end
-- A requeued dead letter's lease and letter end with its attempt: once an outcome other than the
-- failure the letter recorded is stored for the item (a success, another failure), or its result
-- is gone. That very failure (same message as the letter's reason), stored only now because its
-- result task was still queued behind the operator's requeue or was delivered again, leaves both:
-- the requeued copy is still to come and must not find itself finished. (An attempt that fails
-- anew and gives up wrote a new letter and ended the lease first, so that one stays.)
local function failure_message(text)
  local ok, result = pcall(cjson.decode, text)
  if not ok or type(result) ~= 'table' then return nil end
  if type(result.error) == 'table' then return result.error.message end
  local result_action = type(result.action) == 'table' and result.action or {}
  if result_action.status == 'error' then return result_action.message end
  return nil
end
local function letter_reason(id)
  local raw = redis.call('HGET', letters, id)
  if not raw then return nil end
  local ok, letter = pcall(cjson.decode, raw)
  if ok and type(letter) == 'table' then return letter.reason end
  return nil
end
local function is_letter_failure(id, outcome)
  local message = failure_message(outcome)
  return message ~= nil and message == letter_reason(id)
end
-- What the failure a letter recorded was counted as (verdict, bytes, failed flag, applied action),
-- from the letter: a scan letter's item was stored Not Scanned with its listed size and an error;
-- an action letter's with its verdict and an action that failed (applied nothing). Nil for a
-- letter of the result step (nothing was stored) or one this script cannot read.
local function letter_counts(id)
  local raw = redis.call('HGET', letters, id)
  if not raw then return nil end
  local ok, letter = pcall(cjson.decode, raw)
  if not ok or type(letter) ~= 'table' or type(letter.payload) ~= 'table' then return nil end
  local payload = letter.payload
  if letter.stage == 'scan' then
    return {'Not Scanned', tonumber(payload.size_in_bytes) or 0, '1', ''}
  end
  if letter.stage == 'action' and type(payload.verdict) == 'table' and by_verdict[payload.verdict.verdict] then
    local answer = payload.verdict
    local info = type(answer.file_info) == 'table' and answer.file_info or {}
    local size = answer.cached == true and 0 or (tonumber(info.file_size_in_bytes) or 0)
    local flag = (type(payload.error) == 'table') and '1' or '0'
    return {answer.verdict, size, flag, ''}
  end
  return nil
end
local function settle_requeue(id, outcome)
  if outcome then
    local message = failure_message(outcome)
    if message ~= nil and message == letter_reason(id) then return end
  end
  redis.call('ZREM', requeued, id)
  redis.call('HDEL', letters, id)
  redis.call('ZREM', letters_index, id)
end
local seq = tonumber(redis.call('GET', seq_key) or '0')
local first_seq = seq
-- a requeued dead letter's lease is rare: one look for the batch instead of one per item
local any_requeued = redis.call('EXISTS', requeued) == 1
-- Counter increments are summed per batch and written once per field (a third of the calls).
local deltas = {}
local function add(key, field, n)
  local fields = deltas[key]
  if not fields then fields = {}; deltas[key] = fields end
  fields[field] = (fields[field] or 0) + n
end
local function count(key, verdict, bytes, failed, action, sign)
  add(key, 'verdict:' .. verdict, sign)
  if bytes ~= 0 then add(key, 'bytes_scanned', sign * bytes) end
  if failed == '1' then add(key, 'errors', sign) end
  if action ~= '' then add(key, 'action:' .. action, sign) end
end
-- A result this call stores for the first time: its sequence number and index entries (its
-- verdict index entry is written after the loop, see ``fresh``).
local function index_new(id, verdict, connector_index, job_index)
  seq = seq + 1
  gather(added, index, seq, id)
  if searched then
    gather(added, connector_index, seq, id)
    gather(added, job_index, seq, id)
    fresh[id] = {seq, verdict}
    fresh_ids[#fresh_ids + 1] = id
    indexes[connector_index] = true
    indexes[job_index] = true
  end
end
-- A failed result replaced by a requeued attempt's outcome: its counts move to the outcome's, in
-- the stats and in its job while the job lives. ``old``, ``new``: {verdict, bytes, failed, action}.
local function move_counts(job, job_keys, old, new)
  count(stats, old[1], old[2], old[3], old[4], -1)
  count(stats, new[1], new[2], new[3], new[4], 1)
  if live(job) then
    count(job, old[1], old[2], old[3], old[4], -1)
    count(job, new[1], new[2], new[3], new[4], 1)
    touched[job] = job_keys
  end
end
-- every item's values are read before anything is written: a malformed one fails the whole call
-- (bytes may be negative: the scanner's size is taken as it answered it, as before)
local items = {}
for n = 0, nitems - 1 do
  local meta = ARGV[first_item_arg + 3 * n + 2]
  local group, verdict, bytes, failed, action, cached, bit =
    string.match(meta, '^(%d+)\t([^\t]*)\t(%-?%d+)\t([01])\t([^\t]*)\t([01])\t(%d+)$')
  if not group or tonumber(group) >= ngroups or not by_verdict[verdict] then
    return redis.error_reply('results_store: malformed item values: ' .. meta)
  end
  items[n + 1] = {tonumber(group), verdict, tonumber(bytes), failed, action, cached == '1', tonumber(bit)}
end
for n = 0, nitems - 1 do
  local i = first_item_arg + 3 * n
  local id, event = ARGV[i], ARGV[i + 1]
  local group, verdict, bytes, failed, action, cached, bit = unpack(items[n + 1])
  local k = first_group_key + 7 * group
  local job, pending, due, connector_index, job_index, done, skips =
    KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5], KEYS[k + 6]
  local req = KEYS[first_request_key + n]
  local leased = any_requeued and redis.call('ZSCORE', requeued, id)
  local status = redis.call('HGET', req, 'status')
  local done_set = bit > 0 and redis.call('GETBIT', done, bit) == 1
  -- skipped (its job was cancelled) while another copy was being scanned: that copy's verdict is
  -- stored and counted as processed instead of skipped, never dropped (skip.lua)
  local was_skipped = status == 'skipped' or (done_set and redis.call('GETBIT', skips, bit) == 1)
  local finished = (done_set and not was_skipped) or status == 'completed'
  if finished and redis.call('HEXISTS', results, id) == 0 then
    -- stored long ago, its result since dropped by retention: a duplicate, unless it is the outcome
    -- of a requeued letter, which takes the place of the failure the letter recorded
    local trimmed = leased and not is_letter_failure(id, event) and letter_counts(id)
    if trimmed then
      redis.call('HSET', results, id, event)
      index_new(id, verdict, connector_index, job_index)
      move_counts(job, {job_index, done, pending, due}, trimmed, {verdict, bytes, failed, action})
      stored[#stored + 1] = 2
      fed[#fed + 1] = event
    else
      stored[#stored + 1] = 0
    end
    if leased then settle_requeue(id, event) end
  elseif redis.call('HSETNX', results, id, event) == 1 then
    index_new(id, verdict, connector_index, job_index)
    local job_live = live(job)
    count(stats, verdict, bytes, failed, action, 1)
    add(stats, 'total', 1)
    if job_live then
      count(job, verdict, bytes, failed, action, 1)
      add(job, 'processed', 1)
      if was_skipped then add(job, 'skipped', -1) end
    end
    -- (only a skip marked in the bitmaps has a bit to clear: SETBIT past the end would allocate)
    if was_skipped and done_set then redis.call('SETBIT', skips, bit, 0) end
    if redis.call('DEL', req) == 0 and accepting and job_live then add(job, 'accepted', 1) end
    if cached then
      add(stats, 'cached', 1)
      if job_live then add(job, 'cached', 1) end
    end
    if job_live and done_bit_fits(done, bit) then
      redis.call('SETBIT', done, bit, 1)
    else
      redis.call('HSET', req, 'status', 'completed')
      redis.call('EXPIRE', req, tombstone_ttl)
      if bit > 0 and job_live then add(job, 'done_spilled', 1) end
    end
    gather(ended, pending, id)
    gather(undue, due, id)
    if job_live then touched[job] = {job_index, done, pending, due} end
    stored[#stored + 1] = 1
    fed[#fed + 1] = event
    if leased then settle_requeue(id, event) end
  else
    -- Already stored. A failed result (scan error, or failed action) is replaced by the outcome of a
    -- requeued dead letter, its counts moved; anything else is a redelivered duplicate, ignored.
    local old = cjson.decode(redis.call('HGET', results, id))
    local old_failed = old.error ~= nil and old.error ~= cjson.null
    local old_action = type(old.action) == 'table' and old.action or {}
    if (old_failed or old_action.status == 'error') and event ~= redis.call('HGET', results, id) then
      local old_applied = old_action.applied == true and old_action.requested or ''
      local old_bytes = tonumber((type(old.file_info) == 'table' and old.file_info.size_in_bytes) or 0) or 0
      local old_flag = old_failed and '1' or '0'
      move_counts(
        job, {job_index, done, pending, due}, {old.verdict, old_bytes, old_flag, old_applied},
        {verdict, bytes, failed, action}
      )
      redis.call('HSET', results, id, event)
      if fresh[id] then
        fresh[id][2] = verdict  -- first stored by this call: its verdict index entry is not written yet
      elseif redis.call('ZSCORE', index, id) then
        -- the replacement takes a new place in the sequence, as a result stored now: a `since`
        -- search walking newest first stops at the first older result, and streams read after a
        -- sequence number; at its old place neither found it
        seq = seq + 1
        redis.call('ZADD', index, seq, id)
        if searched then
          redis.call('ZREM', by_verdict[old.verdict], id)
          redis.call('ZADD', by_verdict[verdict], seq, id)
          redis.call('ZADD', connector_index, 'XX', seq, id)  -- XX: not back into an index trimmed since
          redis.call('ZADD', job_index, 'XX', seq, id)
        end
      end
      stored[#stored + 1] = 2
      fed[#fed + 1] = event
      if leased then settle_requeue(id, event) end
    else
      stored[#stored + 1] = 0
      if leased then settle_requeue(id, redis.call('HGET', results, id)) end
    end
  end
end
if seq > first_seq then redis.call('SET', seq_key, string.format('%d', seq)) end
for _, id in ipairs(fresh_ids) do
  local entry = fresh[id]
  gather(added, by_verdict[entry[2]], entry[1], id)
end
for key, list in pairs(added) do send('ZADD', key, list) end
for key, ids in pairs(ended) do send('HDEL', key, ids) end
for key, ids in pairs(undue) do send('ZREM', key, ids) end
for key, fields in pairs(deltas) do
  for field, n in pairs(fields) do
    if n ~= 0 then redis.call('HINCRBY', key, field, string.format('%d', n)) end  -- never '-0' or '1e+15'
  end
end
for job, job_keys in pairs(touched) do
  redis.call('HSET', job, 'last_update', now_iso, 'last_update_ts', now_ts)
  complete_if_done(job, job_keys[3], job_keys[4], now_iso, now_ts)
  -- the job's results index expires with the job (JobStore keeps a TTL on every job hash)
  local ttl = redis.call('TTL', job)
  if ttl > 0 then redis.call('EXPIRE', job_keys[1], ttl) end
  -- and so do its tombstones (a job without a TTL is unexpected: they keep the request-state TTL)
  if redis.call('EXISTS', job_keys[2]) == 1 then
    redis.call('EXPIRE', job_keys[2], ttl > 0 and ttl or tombstone_ttl)
  end
end
local excess = redis.call('ZCARD', index) - retain
if excess > 0 then
  local old, dropped = redis.call('ZPOPMIN', index, excess), {}
  for i = 1, #old, 2 do dropped[#dropped + 1] = old[i] end
  top = old[#old]
  send('HDEL', results, dropped)
  -- secondary indexes are trimmed on write: the verdict ones (few) and those this call wrote to;
  -- the index of a job that gets no more results expires with the job (above)
  for _, key in pairs(by_verdict) do
    redis.call('ZREMRANGEBYSCORE', key, '-inf', top)
  end
  for key, _ in pairs(indexes) do
    redis.call('ZREMRANGEBYSCORE', key, '-inf', top)
  end
end
return {stored, feed_push(feed_bound, fed, first_request_key + nitems)}
