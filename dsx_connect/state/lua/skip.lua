-- Count items of a cancelled job as skipped, once per scan request id: a redelivered batch (its
-- worker died before the ack) finds them marked and counts nothing again. An item with a bit in the
-- job's done bitmap (dsx_connect.jobs.done) is marked there and in the job's skipped bitmap, else by
-- its request state ('skipped'), as is one whose bit is too far past the bitmap's end to set
-- cheaply (done_fits.lua; its job then counts it in 'done_spilled'): another copy of the item
-- already being scanned when the job was cancelled may still bring its verdict, which then takes
-- the skip's place (results_store.lua) instead of being dropped as a duplicate.
-- Every key comes in KEYS (none is built here):
-- KEYS: results, job, job done bitmap, job skipped bitmap, job pending, job due, then one request
--       state per request.
-- ARGV: ttl, now_iso, now_ts, job_id, then pairs of request id and done bit (0: none)
local ttl, job_id = tonumber(ARGV[1]), ARGV[4]
local results, job, done, skipped, pending, due = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local n, spilled = 0, 0
for p = 0, (#ARGV - 4) / 2 - 1 do
  local id, bit = ARGV[5 + 2 * p], tonumber(ARGV[6 + 2 * p])
  local state = KEYS[7 + p]
  local status = redis.call('HGET', state, 'status')
  local finished = bit > 0 and redis.call('GETBIT', done, bit) == 1
  if not finished and status ~= 'skipped' and status ~= 'completed' and redis.call('HEXISTS', results, id) == 0 then
    if done_bit_fits(done, bit) then
      redis.call('SETBIT', done, bit, 1)
      redis.call('SETBIT', skipped, bit, 1)
      redis.call('DEL', state)
    else
      redis.call('HSET', state, 'status', 'skipped', 'job_id', job_id)
      redis.call('EXPIRE', state, ttl)
      if bit > 0 then spilled = spilled + 1 end
    end
    n = n + 1
  end
  redis.call('HDEL', pending, id)
  redis.call('ZREM', due, id)
end
if n > 0 then
  redis.call('HINCRBY', job, 'skipped', n)
  if spilled > 0 then redis.call('HINCRBY', job, 'done_spilled', spilled) end
  local job_ttl = redis.call('TTL', job)
  redis.call('EXPIRE', done, job_ttl > 0 and job_ttl or ttl)
  redis.call('EXPIRE', skipped, job_ttl > 0 and job_ttl or ttl)  -- no-op where no bit was set
end
redis.call('HSET', job, 'last_update', ARGV[2], 'last_update_ts', ARGV[3])
return n
