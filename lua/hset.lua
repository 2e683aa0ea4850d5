#!lua
-- SPDX-License-Identifier: BSD-3-Clause
-- Update fields of a cached record in place; the TTL stays as it is.
-- First, a fill under way for the key is revoked (its __lock removed, and
-- the daemons waiting on it told on the key's channel): it read the
-- upstream before this write and must not store that over it.
-- Only a record this daemon's fills wrote is updated: a key of another
-- type, without a numeric __exp, a not-found sentinel or a raw body is
-- "not cached" (0), never an error; so is a record past its own end that
-- a fill's lock keeps (__keep, see lock.lua).
-- KEYS[1] record; ARGV[1] the key's notice channel; ARGV[2..] field, value, ...
-- Returns 1 when updated, 0 when not cached (no field written).
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then
  return 0
end
local v = redis.call('HMGET', KEYS[1], '__exp', '__nf', '__lock', '__keep')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if v[3] then
  redis.call('HDEL', KEYS[1], '__lock', '__lockexp')
  local r = redis.pcall('SPUBLISH', ARGV[1], 'revoked')
  if type(r) == 'table' and r.err then
    redis.call('PUBLISH', ARGV[1], 'revoked')
  end
end
if not (v[1] and string.match(v[1], '^%d+$')) or v[2] or redis.call('HEXISTS', KEYS[1], '__body') == 1 or
   (v[4] and tonumber(v[4]) and tonumber(v[4]) <= now) then
  return 0                -- not ours, not found, raw, or past its end (kept by a lock)
end
for i = 2, #ARGV, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return 1
