-- Store a fetched record, release the lock and announce the fill, but only
-- while the lock still holds our token: DEL removes the lock, so a fill that
-- began before an invalidation never writes its old data back.
-- KEYS[1] record, KEYS[2] lock
-- ARGV[1] token, ARGV[2] 'own' or 'take' (after a lock timeout: store only
-- if nobody holds the lock), ARGV[3] record ttl (ms), ARGV[4] channel,
-- ARGV[5..] field, value, ...
local cur = redis.call('GET', KEYS[2])
if cur ~= ARGV[1] and (ARGV[2] ~= 'take' or cur) then
  return 0
end
redis.call('DEL', KEYS[1])
-- unpack() is bounded by Lua's C stack: write in slices.
for i = 5, #ARGV, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if cur then
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[4], KEYS[1])
return 1
