-- Fixed window: mirrors fixed_window_step. KEYS[1]: hash {w = window index, c = count}.
local window = period
local state = redis.call('HMGET', KEYS[1], 'w', 'c')
local current = math.floor(now / window)
local count = 0
if tonumber(state[1]) == current then count = tonumber(state[2]) end
local until_next = (current + 1) * window - now
if mode == 'refund' then
  if count > 0 then redis.call('HSET', KEYS[1], 'c', int(math.max(count - cost, 0))) end
  return reply(1, 0, 0, -1, 0)
end
if count + cost > limit then
  return reply(0, limit - count, until_next, until_next, 0)
end
count = count + cost
if mode == 'check' then
  redis.call('HSET', KEYS[1], 'w', int(current), 'c', int(count))
  redis.call('PEXPIRE', KEYS[1], ttl_ms(until_next))
end
return reply(1, limit - count, until_next, -1, 0)
