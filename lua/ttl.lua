-- SPDX-License-Identifier: BSD-3-Clause
-- TTL of a cache entry: a hash that holds only a fill's lock is no entry
-- (-2), whatever its own TTL; a record a lock keeps past its end
-- (__keep, see lock.lua) has the TTL it had.
-- KEYS[1] record. Returns PTTL, or -2.
local kt = redis.call('TYPE', KEYS[1]).ok
if kt == 'hash' then
  local v = redis.call('HMGET', KEYS[1], '__exp', '__keep')
  if not v[1] then
    return -2
  end
  if v[2] and tonumber(v[2]) then
    local t = redis.call('TIME')
    local left = tonumber(v[2]) - (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
    return left > 0 and left or -2
  end
end
return redis.call('PTTL', KEYS[1])
