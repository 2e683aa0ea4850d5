-- A fill that stores nothing (upstream error, Redis refused the store,
-- shutdown): release our lock and wake the waiters so they can try.
-- No shebang on purpose: DEL and PUBLISH still run when Redis is over
-- maxmemory, which is when a fill's lock most needs to go.
-- KEYS[1] lock; ARGV[1] token, ARGV[2] channel, ARGV[3] record key
if redis.call('TYPE', KEYS[1]).ok == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
