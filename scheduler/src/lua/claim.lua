-- ARGV[2]: now, ARGV[3]: lease in ms, ARGV[4]: at most this many.
local now, lease, max = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
for _, id in ipairs(call('ZRANGEBYSCORE', p .. 'delayed', '-inf', now, 'LIMIT', 0, 1000)) do
  move(id, 'ready')
end
local out = {}
local next_due = call('ZRANGE', p .. 'delayed', 0, 0, 'WITHSCORES')
out[1] = next_due[2] or '-1'
for _ = 1, max do
  local popped = call('ZPOPMIN', p .. 'ready')
  local id = popped[1]
  if not id then break end
  local k = tkey(id)
  local token = call('INCR', p .. 'token')
  local attempts = call('HINCRBY', k, 'attempts', 1)
  call('HSET', k, 'token', token, 'lease_until', int(now + lease))
  move(id, 'running')
  local v = call('HMGET', k, 'name', 'payload', 'last_delay')
  for _, x in ipairs({id, v[1], v[2], attempts, token, v[3]}) do table.insert(out, x) end
end
return out
