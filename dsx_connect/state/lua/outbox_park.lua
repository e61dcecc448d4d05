-- Append the events ARGV[2..] to the history outbox (KEYS[1]) while it holds fewer than ARGV[1];
-- the ones that do not fit are not parked (the newest: trimming the oldest instead would race with
-- a drain that has read them and trims them once written). Returns how many were not parked.
local room = tonumber(ARGV[1]) - redis.call('LLEN', KEYS[1])
local given = #ARGV - 1
if room <= 0 then return given end
local take = math.min(room, given)
redis.call('RPUSH', KEYS[1], unpack(ARGV, 2, take + 1))
return given - take
