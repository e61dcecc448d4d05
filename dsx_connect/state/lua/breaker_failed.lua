-- Counts a batch whose scans failed on the scanner; opens the breaker at the threshold.
-- KEYS[1] breaker; ARGV: threshold, open_s, open_max_s, now, error. Returns open_until (0 if closed).
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'last_error', ARGV[5], 'last_failure', ARGV[4])
if failures < tonumber(ARGV[1]) then return '0' end
local opened = tonumber(redis.call('HGET', KEYS[1], 'times_opened') or '0')
local period = math.min(tonumber(ARGV[2]) * (2 ^ opened), tonumber(ARGV[3]))
local open_until = tonumber(ARGV[4]) + period
redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', tostring(open_until), 'failures', 0,
           'times_opened', opened + 1, 'opened_at', ARGV[4])
return tostring(open_until)
