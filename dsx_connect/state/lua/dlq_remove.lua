-- Deletes dead letters only if each is still the one read (same failed_at): a letter written
-- again by a requeued attempt that failed survives.
-- KEYS: letters hash, index, requeued leases, then the stage indexes. ARGV: pairs of id, failed_at.
local n = 0
for i = 1, #ARGV, 2 do
  local raw = redis.call('HGET', KEYS[1], ARGV[i])
  if raw and cjson.decode(raw).failed_at == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    for k = 2, #KEYS do
      redis.call('ZREM', KEYS[k], ARGV[i])
    end
    n = n + 1
  end
end
return n
