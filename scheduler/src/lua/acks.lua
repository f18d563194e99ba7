-- Acks many leased tasks at once. ARGV[2]: now, ARGV[3]: retention ms of
-- a succeeded task, then pairs of id and token. Returns one status per
-- pair, in order: 'ok', 'stale' or 'missing' (as transition.lua's ack).
-- Each ack reads and writes its own hash; the running set and the counts
-- change once for the batch.
local now, retention = tonumber(ARGV[2]), ARGV[3]
local out, done = {}, {}
for i = 4, #ARGV - 1, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local k = tkey(id)
  -- kids: 0 when no task names this one as a parent (a task stored
  -- before the field existed has none: its children list is read).
  local v = call('HMGET', k, 'state', 'token', 'last_error', 'kids')
  if not v[1] then
    out[#out + 1] = 'missing'
  elseif v[1] ~= 'running' or v[2] ~= token then
    out[#out + 1] = 'stale'
  else
    if v[3] then call('HDEL', k, 'last_error') end
    call('HSET', k, 'state', 'succeeded')
    call('PEXPIRE', k, retention)
    done[#done + 1] = id
    if v[4] ~= '0' then
      local children = call('LRANGE', p .. 'children:' .. id, 0, -1)
      for _, child in ipairs(children) do
        local ck = tkey(child)
        if call('HGET', ck, 'state') == 'waiting' and call('HINCRBY', ck, 'parents_left', -1) <= 0 then
          make_due(child, now)
        end
      end
      if #children > 0 then call('PEXPIRE', p .. 'children:' .. id, retention) end
    end
    out[#out + 1] = 'ok'
  end
end
remove_all(p .. 'running', done)
if #done > 0 then
  call('HINCRBY', p .. 'counts', 'running', -#done)
  call('HINCRBY', p .. 'counts', 'succeeded', #done)
end
return out
