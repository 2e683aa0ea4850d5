#!lua
-- Update fields of a cached record in place; the TTL stays as it is.
-- Only a record this daemon's fills wrote is updated: a key of another type,
-- without a numeric __exp, a not-found sentinel or a raw body is "not
-- cached" (0), never an error.
-- KEYS[1] record; ARGV field, value, ...
-- Returns 1 when updated, 0 when not cached (nothing written).
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then
  return 0
end
local v = redis.call('HMGET', KEYS[1], '__exp', '__nf')
if not (v[1] and string.match(v[1], '^%d+$')) or v[2] or redis.call('HEXISTS', KEYS[1], '__body') == 1 then
  return 0
end
for i = 1, #ARGV, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return 1
