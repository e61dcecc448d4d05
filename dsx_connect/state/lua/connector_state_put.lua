-- Keep one value of a connector's state, within the connector's bounds (dsx_connect.state.connectors).
-- Every key comes in KEYS (none is built here).
-- KEYS: the namespace's hash, the connector's usage hash (keys, bytes), its set of namespaces.
-- ARGV: namespace, key, value, largest key count, largest byte count (names and values).
-- Returns {'ok'}, or {'!keys', count} / {'!bytes', bytes} when the write would pass a bound (nothing
-- is written then). A write that adds no key and no bytes passes even over a bound (an overwrite
-- with a shorter value is always possible).
local hash, usage, spaces = KEYS[1], KEYS[2], KEYS[3]
local namespace, field, value = ARGV[1], ARGV[2], ARGV[3]
local max_keys, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5])
local indexed = redis.call('SISMEMBER', spaces, namespace) == 1
if not indexed and redis.call('EXISTS', hash) == 1 then
  -- a namespace written before its connector's usage was kept (an upgrade): counted once, here
  local held = redis.call('HGETALL', hash)
  local bytes = 0
  for i = 1, #held do bytes = bytes + #held[i] end
  redis.call('HINCRBY', usage, 'keys', #held / 2)
  redis.call('HINCRBY', usage, 'bytes', bytes)
  redis.call('SADD', spaces, namespace)
  indexed = true
end
local counts = redis.call('HMGET', usage, 'keys', 'bytes')
local n_keys, n_bytes = tonumber(counts[1] or '0'), tonumber(counts[2] or '0')
local exists = redis.call('HEXISTS', hash, field) == 1
local add_keys, add_bytes = 1, #field + #value
if exists then
  add_keys, add_bytes = 0, #value - redis.call('HSTRLEN', hash, field)
end
if add_keys > 0 and n_keys + add_keys > max_keys then return {'!keys', n_keys} end
if add_bytes > 0 and n_bytes + add_bytes > max_bytes then return {'!bytes', n_bytes} end
redis.call('HSET', hash, field, value)
if add_keys ~= 0 then redis.call('HINCRBY', usage, 'keys', add_keys) end
if add_bytes ~= 0 then redis.call('HINCRBY', usage, 'bytes', add_bytes) end
if not indexed then redis.call('SADD', spaces, namespace) end
return {'ok'}
