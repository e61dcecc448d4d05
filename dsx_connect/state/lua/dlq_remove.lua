-- Deletes dead letters only if each is still the one read (same failed_at): a letter written
-- again by a requeued attempt that failed survives. KEYS: letters hash, index, requeued leases. ARGV: pairs of id, failed_at.
local n = 0
for i = 1, #ARGV, 2 do
  local raw = redis.call('HGET', KEYS[1], ARGV[i])
  if raw and cjson.decode(raw).failed_at == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
    redis.call('ZREM', KEYS[3], ARGV[i])
    n = n + 1
  end
end
return n
