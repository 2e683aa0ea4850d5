#!lua flags=allow-oom
-- SPDX-License-Identifier: BSD-3-Clause
-- One namespace's circuit breaker, shared by every daemon on this Redis
-- (docs/design.md section 14). The state is one hash, so the script
-- touches one key (its hash tag is the namespace: one slot in a cluster).
-- Fields: fails, consecutive upstream failures; open, until when (Redis
-- ms) the namespace is open (absent: closed); probe, until when the one
-- probe sent after the open period may run. allow-oom: a few bytes, and a
-- full Redis must not make every daemon hammer a failing upstream.
-- KEYS[1] <key_prefix>breaker:{<namespace>}
-- ARGV[1] ask (before a fetch), ok or fail (after one),
-- ARGV[2] breaker_failures, ARGV[3] breaker_open_ms, ARGV[4] a probe's time (ms)
-- Returns {state, open until, Redis now, changed, go}: state 0 closed, 1
-- open, 2 half-open (the open period is over); changed 1 when this call
-- changed the state; go 1 when the caller may fetch (ask: closed, or the
-- probe is ours).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, open_ms, probe_ms = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local v = redis.call('HMGET', KEYS[1], 'fails', 'open', 'probe')
local open, probe = tonumber(v[2] or '') or 0, tonumber(v[3] or '') or 0
local function state()
  if open == 0 then return 0 end
  if now < open then return 1 end
  return 2
end
local before = state()
local keep = open_ms + probe_ms + 60000
if ARGV[1] == 'ask' then
  if before == 1 or (before == 2 and probe > now) then
    return {before, open, now, 0, 0}
  end
  if before == 2 then
    redis.call('HSET', KEYS[1], 'probe', string.format('%.0f', now + probe_ms))
    redis.call('PEXPIRE', KEYS[1], keep)
  end
  return {before, open, now, 0, 1}
end
if ARGV[1] == 'ok' then
  if v[1] or v[2] then
    redis.call('DEL', KEYS[1])
  end
  return {0, 0, now, before ~= 0 and 1 or 0, 1}
end
local fails = redis.call('HINCRBY', KEYS[1], 'fails', 1)
-- A failure past the limit opens a closed namespace and re-opens a
-- half-open one (its probe failed); an open one keeps its end.
if fails >= limit and before ~= 1 then
  open = now + open_ms
  redis.call('HSET', KEYS[1], 'open', string.format('%.0f', open))
  redis.call('HDEL', KEYS[1], 'probe')
end
redis.call('PEXPIRE', KEYS[1], keep)
local after = state()
return {after, open, now, after ~= before and 1 or 0, 0}
