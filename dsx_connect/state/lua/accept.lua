-- Records accepted scan requests once each: a request counts for its job only when neither its
-- state nor its result nor its bit in the job's done bitmap exists yet, so a batch the connector
-- resubmits (its answer was lost when the core died) is queued again but never counted twice.
-- A new request is also kept in its job's pending hash until its result is stored, with a lease in the
-- job's due zset, so that the sweep can send again an item no worker took in time (jobs.recovery).
-- Every key comes in KEYS (none is built here):
-- KEYS: results, then 4 per job (job, done bitmap, pending, due) in the order of ARGV's job ids,
--       then one request state per request.
-- ARGV: ttl, now_iso, now_ts, lease deadline, job count J, the J job ids, then 8 values per request:
--       id, job slot (1..J), location, connector_uuid, accepted_at, status, task JSON, done bit (0: none)
local ttl, now_iso, now_ts, due = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local njobs = tonumber(ARGV[5])
local results, counts = KEYS[1], {}
local pending_of, leases_of = {}, {}  -- slot -> {id, task JSON, ...}, slot -> {lease deadline, id, ...}
local first_arg, first_state = 6 + njobs, 2 + 4 * njobs
local nreq = (#ARGV - first_arg + 1) / 8
-- First, before any write: a known request whose state names another location is one item id given
-- to two items (a connector's bug: both would get one request id, and the second never be scanned).
-- The whole call is refused: {'!collision', id, stored location, this location}.
local known = {}
for n = 0, nreq - 1 do
  local i = first_arg + 8 * n
  -- every state has a status (a tombstone the result step left may have no location)
  local f = redis.call('HMGET', KEYS[first_state + n], 'location', 'status')
  local was = f[1]
  if was and was ~= ARGV[i + 2] then return {'!collision', ARGV[i], was, ARGV[i + 2]} end
  known[n] = f[2] ~= false
end
for n = 0, nreq - 1 do
  local i = first_arg + 8 * n
  local id, slot, bit = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 7])
  local k = 2 + 4 * (slot - 1)
  local done = KEYS[k + 1]
  local state = KEYS[first_state + n]
  local finished = bit > 0 and redis.call('GETBIT', done, bit) == 1
  if not finished and not known[n] and redis.call('HEXISTS', results, id) == 0 then
    redis.call('HSET', state, 'status', ARGV[i + 5], 'job_id', ARGV[5 + slot], 'location', ARGV[i + 2],
               'connector_uuid', ARGV[i + 3], 'accepted_at', ARGV[i + 4])
    redis.call('EXPIRE', state, ttl)
    local slot_pending = pending_of[slot]
    if not slot_pending then
      slot_pending, leases_of[slot] = {}, {}
      pending_of[slot] = slot_pending
    end
    local n_pending = #slot_pending
    slot_pending[n_pending + 1], slot_pending[n_pending + 2] = id, ARGV[i + 6]
    local slot_leases = leases_of[slot]
    slot_leases[n_pending + 1], slot_leases[n_pending + 2] = due, id
    counts[slot] = (counts[slot] or 0) + 1
  end
end
-- the pending entries and leases go in one call per job after the loop (nothing above reads them),
-- in slices: Lua's unpack takes at most ~8000 values
for slot, list in pairs(pending_of) do
  local k = 2 + 4 * (slot - 1)
  local leases = leases_of[slot]
  for j = 1, #list, 2000 do
    local last = math.min(j + 1999, #list)
    redis.call('HSET', KEYS[k + 2], unpack(list, j, last))
    redis.call('ZADD', KEYS[k + 3], unpack(leases, j, last))
  end
end
local out = {}
for slot, n in pairs(counts) do
  local k = 2 + 4 * (slot - 1)
  local job = KEYS[k]
  redis.call('HINCRBY', job, 'accepted', n)
  redis.call('EXPIRE', KEYS[k + 2], ttl)
  redis.call('EXPIRE', KEYS[k + 3], ttl)
  redis.call('HSET', job, 'last_update', now_iso, 'last_update_ts', now_ts)
  out[#out + 1] = ARGV[5 + slot]
  out[#out + 1] = n
end
return out
