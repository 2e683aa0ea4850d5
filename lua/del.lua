-- Remove cache entries and their fill locks (locks first, so a fill that
-- is under way cannot write back). KEYS: record, lock, record, lock, ...
-- Returns the number of entries removed.
local n = 0
for i = 1, #KEYS, 2 do
  redis.call('DEL', KEYS[i + 1])
  n = n + redis.call('DEL', KEYS[i])
end
return n
