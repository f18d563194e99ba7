-- One transition of a leased task (acks are batch.lua's). ARGV[2]: op
-- (renew, fail, release), ARGV[3]: id, ARGV[4]: token, ARGV[5]: now, then
-- per op: renew: ARGV[6] lease ms; fail: ARGV[6] error, ARGV[7] retry_at ('' = dead).
local op, id, token, now = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local status = leased(id, token)
if status ~= 'ok' then return status end
local k = tkey(id)
if op == 'renew' then
  -- A lease's end is its score in the running set.
  call('ZADD', p .. 'running', int(now + tonumber(ARGV[6])), id)
elseif op == 'fail' then
  call('HSET', k, 'last_error', ARGV[6])
  local retry_at = tonumber(ARGV[7])
  if retry_at then
    call('HSET', k, 'run_at', int(retry_at), 'last_delay', int(math.max(retry_at - now, 0)))
    move(id, 'retrying')
  else
    move(id, 'dead')
    propagate(id)
  end
elseif op == 'release' then
  call('HINCRBY', k, 'attempts', -1)
  move(id, 'ready')
end
return 'ok'
