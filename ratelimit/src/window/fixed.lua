-- Fixed window: mirrors fixed_window_step. The state: a hash {w = window
-- index, c = count}.
local width = 5
local window = period
local current = floor(now / window)
local until_next = (current + 1) * window - now
local function decide(key, _, mode, cost)
  local state = call('HMGET', key, 'w', 'c')
  local count = 0
  if tonum(state[1]) == current then count = tonum(state[2]) end
  if mode == 'refund' then
    if count > 0 then call('HSET', key, 'c', int(max(count - cost, 0))) end
    return 1, 0, 0, -1, 0
  end
  if count + cost > limit then
    return 0, limit - count, until_next, until_next, 0
  end
  count = count + cost
  if mode == 'check' then
    call('HSET', key, 'w', int(current), 'c', int(count))
    call('PEXPIRE', key, ttl_ms(until_next))
  end
  return 1, limit - count, until_next, -1, 0
end
