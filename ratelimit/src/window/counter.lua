-- Sliding window counter, on Redis: the state of sliding_counter_step in a
-- hash {w = window index, c = current count, p = previous count}. Replies
-- with the stored (w, c, p).
local window = period
local function decide(key, _, mode, cost, out)
  local state = call('HMGET', key, 'w', 'c', 'p')
  local w, c, p = tonum(state[1]) or 0, tonum(state[2]) or 0, tonum(state[3]) or 0
  -- As Counter::roll: the counts as of the window that holds now (or the
  -- state's own window, if now is older: time never goes back).
  local t = max(now, w * window)
  local index = floor(t / window)
  local previous, current = 0, 0
  if w == index then
    previous, current = p, c
  elseif w == index - 1 then
    previous = c
  end
  local function save(count)
    call('HSET', key, 'w', int(index), 'c', int(count), 'p', int(previous))
    -- The counts matter until the end of the next window.
    call('PEXPIRE', key, ttl_ms((index + 2) * window - now))
  end
  if mode == 'refund' then
    save(max(current - cost, 0))
    return reply(out)
  end
  local elapsed = t - index * window
  local estimate = floor(previous * (window - elapsed) / window) + current
  if mode == 'check' and estimate + cost <= limit then save(current + cost) end
  reply(out, w, c, p)
end
