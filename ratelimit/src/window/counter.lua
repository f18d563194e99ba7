-- Sliding window counter, on Redis: the state of sliding_counter_step in a
-- hash {w = window index, c = current count, p = previous count}. Replies
-- with the stored (w, c, p).
--
-- Each key is read once and written at most once per batch (held() in
-- the prelude): store_held() writes its final state, with the expiry of
-- the batch's last write, after the last decision.
local window = period
-- A key's state: w, c, p, dirty, and ttl, the expiry in ms of the last
-- write.
local function read(key)
  local v = call('HMGET', key, 'w', 'c', 'p')
  return {w = tonum(v[1]) or 0, c = tonum(v[2]) or 0, p = tonum(v[3]) or 0, dirty = false}
end
local function decide(key, _, mode, cost, out)
  local s = held(key, read)
  local w, c, p = s.w, s.c, s.p
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
    s.w, s.c, s.p, s.dirty = index, count, previous, true
    -- The counts matter until the end of the next window.
    s.ttl = ttl_ms((index + 2) * window - now)
  end
  if mode == 'refund' then
    save(max(current - cost, 0))
    reply(out)
  else
    local elapsed = t - index * window
    local estimate = floor(previous * (window - elapsed) / window) + current
    if mode == 'check' and estimate + cost <= limit then save(current + cost) end
    reply(out, w, c, p)
  end
end
store_held = function(key, s)
  call('HSET', key, 'w', int(s.w), 'c', int(s.c), 'p', int(s.p))
  call('PEXPIRE', key, s.ttl)
end
