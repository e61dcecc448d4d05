-- Remove the oldest ARGV[2] events of the history outbox (KEYS[1]) if the maintenance lock
-- (KEYS[2]) still holds this round's token (ARGV[1]), and extend the lock by ARGV[3] seconds.
-- A round that outlived its lock trims nothing: another replica's round may have written the same
-- head and trimmed it already, and a second trim would drop events nobody wrote. 1 if trimmed.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('LTRIM', KEYS[1], tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
return 1
