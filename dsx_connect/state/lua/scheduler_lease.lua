-- Renew (ARGV[2] ms) or release (ARGV[2] = 0) the leader lease KEYS[1], only for its holder ARGV[1].
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[2]) > 0 then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('DEL', KEYS[1])
