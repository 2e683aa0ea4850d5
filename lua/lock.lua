#!lua flags=allow-oom
-- Take the fill lock of a record, unless the record is fresh.
-- Everything under key_prefix is ours: a lock without a TTL or of another
-- type is stale and replaced; a record of another type, without a numeric
-- __exp or of the other format's shape is a miss (the fill overwrites it).
-- Freshness is judged by Redis's clock, so daemons on hosts whose clocks
-- differ agree. allow-oom: the lock is a few bytes with a TTL, and without it
-- every daemon would fetch at once while Redis is full (fill.lua, which
-- stores the record, is refused then).
-- KEYS[1] record, KEYS[2] lock
-- ARGV[1] token, ARGV[2] lock ttl (ms), ARGV[3] format (raw or hash),
-- ARGV[4] Redis time (ms) when this fill first found the lock held, or ''
-- Returns {code, Redis time in ms[, holder]}; code 1: lock taken; 0: another
-- daemon holds it (its token comes third, so waiters see a new holder); 2: record is fresh; 3: a fill that ended after ARGV[4] found
-- nothing upstream and stored nothing (negative_ttl_s = 0): share that.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('TYPE', KEYS[1]).ok == 'hash' then
  local v = redis.call('HMGET', KEYS[1], '__exp', '__nf')
  local exp = v[1] and string.match(v[1], '^%d+$') and tonumber(v[1])
  if exp and exp > now then
    local body = redis.call('HEXISTS', KEYS[1], '__body') == 1
    if v[2] or body == (ARGV[3] == 'raw') then
      return {2, now}
    end
  end
end
local lt = redis.call('TYPE', KEYS[2]).ok
if lt == 'string' then
  local cur = redis.call('GET', KEYS[2])
  if string.sub(cur, 1, 3) == 'nf:' then
    if ARGV[4] ~= '' and tonumber(ARGV[4]) <= (tonumber(string.sub(cur, 4)) or 0) then
      return {3, now}
    end
    redis.call('DEL', KEYS[2])
  elseif redis.call('PTTL', KEYS[2]) < 0 then
    redis.call('DEL', KEYS[2])
  end
elseif lt ~= 'none' then
  redis.call('DEL', KEYS[2])
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, now}
end
return {0, now, redis.call('GET', KEYS[2])}
