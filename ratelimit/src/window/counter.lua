-- Sliding window counter: mirrors sliding_counter_step. The state: a hash
-- {w = window index, c = current count, p = previous count}.
local width = 5
local window = period
local index = floor(now / window)
local elapsed = now - index * window
local until_next = window - elapsed
-- Mirrors counter_retry: the first elapsed time at which `weight` previous
-- counts leave room for `room` more is window - floor(((room + 1) * window
-- - 1) / weight); past this window, `current` becomes the previous count.
local function first_fit(weight, room)
  if weight == 0 then return 0 end
  return max(window - floor(((room + 1) * window - 1) / weight), 0)
end
local function retry(previous, current, cost)
  if current + cost <= limit then
    return max(first_fit(previous, limit - current - cost), elapsed) - elapsed
  end
  return (window - elapsed) + first_fit(current, limit - cost)
end
local function decide(key, _, mode, cost)
  local state = call('HMGET', key, 'w', 'c', 'p')
  local previous, current = 0, 0
  local w = tonum(state[1])
  if w == index then
    previous, current = tonum(state[3]), tonum(state[2])
  elseif w == index - 1 then
    previous = tonum(state[2])
  end
  local function save(c)
    call('HSET', key, 'w', int(index), 'c', int(c), 'p', int(previous))
    -- The counts matter until the end of the next window.
    call('PEXPIRE', key, ttl_ms((index + 2) * window - now))
  end
  if mode == 'refund' then
    save(max(current - cost, 0))
    return 1, 0, 0, -1, 0
  end
  local estimate = floor(previous * (window - elapsed) / window) + current
  if estimate + cost > limit then
    return 0, max(limit - estimate, 0), until_next, retry(previous, current, cost), 0
  end
  if mode == 'check' then save(current + cost) end
  return 1, limit - estimate - cost, until_next, -1, 0
end
