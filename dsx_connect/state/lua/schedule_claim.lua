-- Claim a slot (or a scanner change) of a schedule for the leader holding the lease, once.
-- KEYS[1] the leader lease, KEYS[2] the claim, KEYS[3] the schedule's state hash,
-- KEYS[4] the schedules hash
-- ARGV[1] the caller's lease token (the fence), ARGV[2] the claim's value, ARGV[3] its TTL (ms),
-- ARGV[4] the connector uuid (its field in KEYS[4]),
-- ARGV[5..] field/value pairs written to the state hash with the claim
-- Returns 1 claimed, 0 claimed before (by anyone), -1 the caller no longer holds the lease,
-- -2 the schedule was deleted meanwhile (nothing claimed, no state written back).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
if redis.call('HEXISTS', KEYS[4], ARGV[4]) == 0 then
  return -2
end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  return 0
end
if #ARGV > 4 then
  redis.call('HSET', KEYS[3], unpack(ARGV, 5))
end
return 1
