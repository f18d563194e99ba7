-- ARGV[2]: op (reap, replay, dead), then per op:
-- reap: ARGV[3] now, ARGV[4] attempts per task name (JSON object), ARGV[5]
-- attempts for other names; replay: ARGV[3] id, ARGV[4] now; dead: ARGV[3]
-- the last index to list.
local op = ARGV[2]
if op == 'reap' then
  local now = tonumber(ARGV[3])
  local limits, default = cjson.decode(ARGV[4]), tonumber(ARGV[5])
  local n = 0
  for _, id in ipairs(call('ZRANGEBYSCORE', p .. 'running', '-inf', now, 'LIMIT', 0, 1000)) do
    local k = tkey(id)
    local v = call('HMGET', k, 'name', 'attempts')
    local attempts = tonumber(v[2]) or 0
    -- The claim counted this attempt: on the last allowed one, a lost
    -- lease ends the task (a poison task dies here, not forever retried).
    if attempts >= (tonumber(limits[v[1]]) or default) then
      call('HSET', k, 'last_error', 'lease expired: the worker stopped renewing (attempt ' .. attempts .. ', the last)')
      move(id, 'dead')
      propagate(id)
    else
      call('HSET', k, 'last_error', 'lease expired: the worker stopped renewing')
      move(id, 'ready')
    end
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
  for _, id in ipairs(call('ZRANGE', p .. 'dead', 0, ARGV[3])) do
    local v = call('HMGET', tkey(id), 'name', 'state', 'attempts', 'last_error', 'run_at', 'payload')
    table.insert(out, id)
    for i = 1, 6 do table.insert(out, v[i] or false) end
  end
  return out
end
return 'unknown op'
