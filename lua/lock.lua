#!lua flags=allow-oom
-- SPDX-License-Identifier: BSD-3-Clause
-- Take the fill lock of a record, unless the record is fresh.
-- The lock lives in the record's own hash (fields __lock, the holder's
-- token, and __lockexp, when it lapses in Redis ms), so that every script
-- touches one key: a slot in migration then answers ASK, never TRYAGAIN,
-- and a read of the record also tells which fill is under way.
-- Everything under key_prefix is ours: a key of another type is replaced;
-- a record without a numeric __exp or of the other format's shape is a
-- miss (the fill overwrites it). Freshness is judged by Redis's clock, so
-- daemons on hosts whose clocks differ agree. allow-oom: the lock is a few
-- bytes, and without it every daemon would fetch at once while Redis is
-- full (fill.lua, which stores the record, is refused then).
-- KEYS[1] record
-- ARGV[1] token, ARGV[2] lock ttl (ms), ARGV[3] format (raw or hash),
-- ARGV[4] Redis time (ms) when this fill first found the lock held, or '',
-- ARGV[5] an early refresh's __exp as its read found it, or '': a fresh
-- record whose __exp is still that is locked for the refresh (another
-- daemon's refresh changed it: 2, nothing to do)
-- Returns {code, Redis time in ms[, holder]}; code 1: lock taken; 0:
-- another daemon holds it (its token comes third, so waiters see a new
-- holder); 2: record is fresh; 3: a fill that ended after ARGV[4] found
-- nothing upstream and stored nothing (negative_ttl_s = 0): share that.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local kt = redis.call('TYPE', KEYS[1]).ok
local exp
if kt == 'hash' then
  local v = redis.call('HMGET', KEYS[1], '__exp', '__nf', '__lock', '__lockexp')
  exp = v[1] and string.match(v[1], '^%d+$') and tonumber(v[1])
  if exp and exp > now then
    local body = redis.call('HEXISTS', KEYS[1], '__body') == 1
    if (v[2] or body == (ARGV[3] == 'raw')) and ARGV[5] ~= v[1] then
      return {2, now}
    end
  end
  local lexp = v[4] and tonumber(v[4]) or 0
  if v[3] and lexp > now then
    if string.sub(v[3], 1, 3) ~= 'nf:' then
      return {0, now, v[3]}
    end
    if ARGV[4] ~= '' and tonumber(ARGV[4]) <= (tonumber(string.sub(v[3], 4)) or 0) then
      return {3, now}
    end
  end
elseif kt ~= 'none' then
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], '__lock', ARGV[1], '__lockexp', string.format('%.0f', now + ttl))
-- The lock must outlive its fill, or another daemon would take the key's
-- lock while this fill still runs: a key that would go sooner (a new one,
-- a record at the very end of its life) lives lock ttl. A record kept so
-- remembers when it would have gone (__keep): past that it is no entry
-- (hset.lua, ttl.lua, del.lua; readers judge by __exp and grace), and
-- release.lua gives the key its own end back.
local pt = redis.call('PTTL', KEYS[1])
if pt < ttl then
  if exp and pt >= 0 and redis.call('HEXISTS', KEYS[1], '__keep') == 0 then
    redis.call('HSET', KEYS[1], '__keep', string.format('%.0f', now + pt))
  end
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return {1, now}
