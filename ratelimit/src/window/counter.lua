-- Sliding window counter, on Redis: the state of sliding_counter_step in a
-- hash {w = window index, c = current count, p = previous count}. Replies
-- with the stored (w, c, p).
--
-- As the buckets do, each key is read once and written at most once per
-- batch: its state between its requests lives in `pending`, and flush()
-- writes the final state (with the expiry of the batch's last write)
-- after the last decision.
local window = period
-- key -> {w, c, p, dirty, ttl, starts, lens}: the state after the batch's
-- decisions so far, whether it needs writing, the TTL in ms of the last
-- write, and where in `out` each of the key's replies starts and how long
-- it is.
local pending, order = {}, {}
local function state(key)
  local s = pending[key]
  if s then return s end
  local v = call('HMGET', key, 'w', 'c', 'p')
  s = {tonum(v[1]) or 0, tonum(v[2]) or 0, tonum(v[3]) or 0, false, nil, {}, {}}
  pending[key] = s
  order[#order + 1] = key
  return s
end
local function decide(key, _, mode, cost, out)
  local s = state(key)
  local w, c, p = s[1], s[2], s[3]
  local start = #out + 1
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
    s[1], s[2], s[3], s[4] = index, count, previous, true
    -- The counts matter until the end of the next window.
    s[5] = ttl_ms((index + 2) * window - now)
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
  s[6][#s[6] + 1], s[7][#s[7] + 1] = start, #out - start + 1
end
flush = function(fail)
  for _, key in ipairs(order) do
    local s = pending[key]
    if s[4] then
      local ok, err = pcall(function()
        call('HSET', key, 'w', int(s[1]), 'c', int(s[2]), 'p', int(s[3]))
        call('PEXPIRE', key, s[5])
      end)
      if not ok then
        for j = 1, #s[6] do fail(s[6][j], s[7][j], err) end
      end
    end
  end
end
