#!lua
-- Update fields of a cached record in place; the TTL stays as it is.
-- First, a fill under way for the key is revoked (its __lock removed, and
-- the daemons waiting on it told on the key's channel): it read the
-- upstream before this write and must not store that over it.
-- Only a record this daemon's fills wrote is updated: a key of another
-- type, without a numeric __exp, a not-found sentinel or a raw body is
-- "not cached" (0), never an error.
-- KEYS[1] record; ARGV[1] the key's notice channel; ARGV[2..] field, value, ...
-- Returns 1 when updated, 0 when not cached (no field written).
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then
  return 0
end
local v = redis.call('HMGET', KEYS[1], '__exp', '__nf', '__lock')
if v[3] then
  redis.call('HDEL', KEYS[1], '__lock', '__lockexp')
  local r = redis.pcall('SPUBLISH', ARGV[1], 'revoked')
  if type(r) == 'table' and r.err then
    redis.call('PUBLISH', ARGV[1], 'revoked')
  end
end
if not (v[1] and string.match(v[1], '^%d+$')) or v[2] or redis.call('HEXISTS', KEYS[1], '__body') == 1 then
  return 0
end
for i = 2, #ARGV, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return 1
