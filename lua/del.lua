-- SPDX-License-Identifier: BSD-3-Clause
-- Remove cache entries, and with them the fill locks they hold (a fill
-- under way then cannot write back); the daemons waiting on such a fill
-- hear that it was revoked, on the key's own channel.
-- KEYS: records. ARGV[1]: key_prefix, from which each key's channel,
-- <prefix>fills:<rest of the key>, is made.
-- Returns the number of entries removed: a hash that held only a lock, or
-- a record a lock kept past its own end (__keep, see lock.lua), was no
-- entry.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = 0
for i = 1, #KEYS do
  local kt = redis.call('TYPE', KEYS[i]).ok
  if kt ~= 'none' then
    if kt ~= 'hash' then
      n = n + 1
    else
      local v = redis.call('HMGET', KEYS[i], '__exp', '__keep')
      if v[1] and not (v[2] and tonumber(v[2]) and tonumber(v[2]) <= now) then
        n = n + 1
      end
    end
    local locked = kt == 'hash' and redis.call('HEXISTS', KEYS[i], '__lock') == 1
    redis.call('UNLINK', KEYS[i])
    if locked then
      local ch = ARGV[1] .. 'fills:' .. string.sub(KEYS[i], #ARGV[1] + 1)
      local r = redis.pcall('SPUBLISH', ch, 'revoked')
      if type(r) == 'table' and r.err then
        redis.call('PUBLISH', ch, 'revoked')
      end
    end
  end
end
return n
