-- SPDX-License-Identifier: BSD-3-Clause
-- A fill that stores nothing (upstream error, Redis refused the store,
-- shutdown): release our lock and wake the waiters so they can try.
-- No shebang on purpose: HDEL and PUBLISH still run when Redis is over
-- maxmemory, which is when a fill's lock most needs to go.
-- A record the lock kept past its own end (__keep, see lock.lua) gets
-- that end back, or goes if it is past.
-- KEYS[1] record; ARGV[1] token, ARGV[2] the key's notice channel
if redis.call('TYPE', KEYS[1]).ok == 'hash' and redis.call('HGET', KEYS[1], '__lock') == ARGV[1] then
  redis.call('HDEL', KEYS[1], '__lock', '__lockexp')
  local keep = tonumber(redis.call('HGET', KEYS[1], '__keep') or '')
  if keep then
    local t = redis.call('TIME')
    if keep <= tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) then
      redis.call('DEL', KEYS[1])
    else
      redis.call('HDEL', KEYS[1], '__keep')
      redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', keep))
    end
  end
end
local r = redis.pcall('SPUBLISH', ARGV[2], 'done')
if type(r) == 'table' and r.err then
  redis.call('PUBLISH', ARGV[2], 'done')
end
return 1
