-- Sliding window counter: mirrors sliding_counter_step. KEYS[1]: hash
-- {w = window index, c = current count, p = previous count}.
local window = period
local state = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local index = math.floor(now / window)
local previous, current = 0, 0
local w = tonumber(state[1])
if w == index then
  previous, current = tonumber(state[3]), tonumber(state[2])
elseif w == index - 1 then
  previous = tonumber(state[2])
end
local elapsed = now - index * window
local function save(c)
  redis.call('HSET', KEYS[1], 'w', int(index), 'c', int(c), 'p', int(previous))
  -- The counts matter until the end of the next window.
  redis.call('PEXPIRE', KEYS[1], ttl_ms((index + 2) * window - now))
end
if mode == 'refund' then
  save(math.max(current - cost, 0))
  return reply(1, 0, 0, -1, 0)
end
local estimate = math.floor(previous * (window - elapsed) / window) + current
local until_next = window - elapsed
if estimate + cost > limit then
  return reply(0, math.max(limit - estimate, 0), until_next, until_next, 0)
end
if mode == 'check' then save(current + cost) end
return reply(1, limit - estimate - cost, until_next, -1, 0)
