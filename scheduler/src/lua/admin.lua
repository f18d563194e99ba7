-- ARGV[2]: op (reap, replay, dead), then per op:
-- reap: ARGV[3] now; replay: ARGV[3] id, ARGV[4] now; dead: ARGV[3] limit.
local op = ARGV[2]
if op == 'reap' then
  local now = tonumber(ARGV[3])
  local n = 0
  for _, id in ipairs(call('ZRANGEBYSCORE', p .. 'running', '-inf', now, 'LIMIT', 0, 1000)) do
    call('HSET', tkey(id), 'last_error', 'lease expired: the worker stopped renewing')
    call('HINCRBY', p .. 'reaped', id, 1)
    move(id, 'ready')
    n = n + 1
  end
  return n
elseif op == 'replay' then
  local id, now = ARGV[3], tonumber(ARGV[4])
  local state = call('HGET', tkey(id), 'state')
  if not state then return 'missing' end
  if state ~= 'dead' then return state end
  call('HSET', tkey(id), 'attempts', 0, 'last_delay', 0, 'run_at', int(now))
  move(id, 'ready')
  return 'ok'
elseif op == 'dead' then
  -- Per dead task: its id, then the fields INFO_FIELDS names.
  local out = {}
  for _, id in ipairs(call('ZRANGE', p .. 'dead', 0, tonumber(ARGV[3]) - 1)) do
    local v = call('HMGET', tkey(id), 'name', 'state', 'attempts', 'last_error', 'run_at')
    table.insert(out, id)
    for i = 1, 5 do table.insert(out, v[i] or false) end
  end
  return out
end
return 'unknown op'
