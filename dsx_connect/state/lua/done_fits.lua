-- Whether a finished item's bit goes into its job's done bitmap (dsx_connect.jobs.done): only where
-- setting it grows the bitmap by DONE_GROWTH_BYTES at most (the store prepends that constant from
-- dsx_connect.jobs.done). A position far past the items finished so far would allocate up to
-- 8 MiB in one SETBIT; such an item keeps a tombstone key (its request state) instead, and its
-- caller counts it in the job's 'done_spilled', which tells the readers of the bitmap alone
-- (JobStore.triage) to look for the keys of the job's items whose bits read 0.
local function done_bit_fits(done, bit)
  return bit > 0 and bit < 8 * (redis.call('STRLEN', done) + DONE_GROWTH_BYTES)
end
