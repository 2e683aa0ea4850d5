-- A fill that stores nothing (upstream error): release our lock and wake
-- the waiters so they can try themselves.
-- KEYS[1] lock; ARGV[1] token, ARGV[2] channel, ARGV[3] record key
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
