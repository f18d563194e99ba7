-- ARGV[2]: now, ARGV[3]: lease in ms, ARGV[4]: at most this many.
-- The claimed tasks leave the ready set in one range and enter the
-- running set in one ZADD; each costs two calls of its own (read its
-- fields, write its lease), and the counts move once for the batch.
local now, lease = tonumber(ARGV[2]), tonumber(ARGV[3])
for _, id in ipairs(call('ZRANGEBYSCORE', p .. 'delayed', '-inf', now, 'LIMIT', 0, 1000)) do
  move(id, 'ready')
end
local out = {}
local next_due = call('ZRANGE', p .. 'delayed', 0, 0, 'WITHSCORES')
out[1] = next_due[2] or '-1'
-- The first `max` by score (then by id), as ZPOPMIN would give them, taken
-- off the set in one pass: cheaper than ZPOPMIN's one delete per member.
if tonumber(ARGV[4]) < 1 then return out end
local popped = call('ZRANGE', p .. 'ready', 0, int(ARGV[4] - 1))
local n = #popped
if n == 0 then return out end
call('ZREMRANGEBYRANK', p .. 'ready', 0, n - 1)
local first = call('INCRBY', p .. 'token', n) - n
local lease_until = int(now + lease)
local running = {}
for i = 1, n do
  local id = popped[i]
  local k = tkey(id)
  local v = call('HMGET', k, 'attempts', 'name', 'payload', 'last_delay')
  local attempts, token = int((tonumber(v[1]) or 0) + 1), int(first + i)
  call('HSET', k, 'attempts', attempts, 'token', token, 'lease_until', lease_until, 'state', 'running')
  running[i] = id
  local at = 1 + 6 * (i - 1)
  out[at + 1], out[at + 2], out[at + 3] = id, v[2], v[3]
  out[at + 4], out[at + 5], out[at + 6] = attempts, token, v[4]
end
add_all(p .. 'running', lease_until, running)
call('HINCRBY', p .. 'counts', 'ready', -n)
call('HINCRBY', p .. 'counts', 'running', n)
return out
