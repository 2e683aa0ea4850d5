#!lua
-- SPDX-License-Identifier: BSD-3-Clause
-- Store a fetched record, release the lock and announce the fill, but only
-- while the record's __lock still holds our token: DEL, INVALIDATE and
-- HSET remove it, so a fill that began before a write never writes its old
-- data back. The notice goes out either way, so waiters look again at once.
-- The shebang (no allow-oom) makes Redis refuse the whole script up front
-- when it is over maxmemory: nothing is half stored, and a script that has
-- begun to write is never let past the limit.
-- __exp is computed from Redis's clock, not the daemon's.
-- KEYS[1] record
-- ARGV[1] token, ARGV[2] fresh time (ms), ARGV[3] key ttl (ms; 0: store no
-- record, remove a stale one, and leave a not-found marker in __lock for
-- ARGV[5] ms, which lock.lua reports to the daemons already waiting), ARGV[4] the key's
-- notice channel, ARGV[5] marker ttl (ms), ARGV[6..] field, value, ...
-- Returns 1 when stored, 0 when the lock was lost (nothing written).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function notice()
  local r = redis.pcall('SPUBLISH', ARGV[4], 'done')
  if type(r) == 'table' and r.err then
    redis.call('PUBLISH', ARGV[4], 'done')
  end
end
local cur = redis.call('TYPE', KEYS[1]).ok == 'hash' and redis.call('HGET', KEYS[1], '__lock')
if cur ~= ARGV[1] then
  notice()
  return 0
end
redis.call('DEL', KEYS[1])
if tonumber(ARGV[3]) > 0 then
  redis.call('HSET', KEYS[1], '__exp', string.format('%.0f', now + tonumber(ARGV[2])))
  -- unpack() is bounded by Lua's C stack: write in slices.
  for i = 6, #ARGV, 1000 do
    redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('HSET', KEYS[1], '__lock', 'nf:' .. string.format('%.0f', now),
             '__lockexp', string.format('%.0f', now + tonumber(ARGV[5])))
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
notice()
return 1
