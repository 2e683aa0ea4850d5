-- Update fields of a cached record in place; the TTL stays as it is.
-- KEYS[1] record; ARGV field, value, ...
-- Returns 1 when updated, 0 when not cached (nothing written).
if redis.call('HEXISTS', KEYS[1], '__exp') == 0 or redis.call('HEXISTS', KEYS[1], '__nf') == 1 then
  return 0
end
for i = 1, #ARGV, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return 1
