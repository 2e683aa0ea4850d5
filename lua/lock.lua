-- Take the fill lock of a record, unless the record is already fresh.
-- KEYS[1] record, KEYS[2] lock
-- ARGV[1] token, ARGV[2] lock ttl (ms), ARGV[3] now (unix ms)
-- Returns 1: lock taken; 0: another daemon holds it; 2: record is fresh.
local exp = redis.call('HGET', KEYS[1], '__exp')
if exp and tonumber(exp) > tonumber(ARGV[3]) then
  return 2
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
