-- TTL of a cache entry: a hash that holds only a fill's lock is no entry
-- (-2), whatever its own TTL.
-- KEYS[1] record. Returns PTTL, or -2.
local kt = redis.call('TYPE', KEYS[1]).ok
if kt == 'hash' and redis.call('HEXISTS', KEYS[1], '__exp') == 0 then
  return -2
end
return redis.call('PTTL', KEYS[1])
