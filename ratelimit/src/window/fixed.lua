-- Fixed window, on Redis: the state of fixed_window_step in a hash
-- {w = window index, c = count}. Replies with the stored (w, c).
--
-- As the buckets do, each key is read once and written at most once per
-- batch: its state between its requests lives in `pending`, and flush()
-- writes the final state (with the expiry the batch's last admission
-- set) after the last decision.
local window = period
-- key -> {w, c, dirty, ttl, starts, lens}: the state after the batch's
-- decisions so far, whether it needs writing, the TTL in ms the last
-- admission set (nil: none, the key keeps its own), and where in `out`
-- each of the key's replies starts and how long it is.
local pending, order = {}, {}
local function state(key)
  local s = pending[key]
  if s then return s end
  local v = call('HMGET', key, 'w', 'c')
  s = {tonum(v[1]) or 0, tonum(v[2]) or 0, false, nil, {}, {}}
  pending[key] = s
  order[#order + 1] = key
  return s
end
local function decide(key, _, mode, cost, out)
  local s = state(key)
  local w, c = s[1], s[2]
  local start = #out + 1
  if mode == 'refund' then
    if c > 0 and w >= floor(now / window) then
      s[2], s[3] = max(c - cost, 0), true
    end
    reply(out)
  else
    -- As in fixed_window_step: time never goes back inside the state.
    local current = floor(max(now, w * window) / window)
    local count = 0
    if w == current then count = c end
    if mode == 'check' and count + cost <= limit then
      s[1], s[2], s[3] = current, count + cost, true
      s[4] = ttl_ms((current + 1) * window - now)
    end
    reply(out, w, c)
  end
  s[5][#s[5] + 1], s[6][#s[6] + 1] = start, #out - start + 1
end
flush = function(fail)
  for _, key in ipairs(order) do
    local s = pending[key]
    if s[3] then
      local ok, err = pcall(function()
        call('HSET', key, 'w', int(s[1]), 'c', int(s[2]))
        if s[4] then call('PEXPIRE', key, s[4]) end
      end)
      if not ok then
        for j = 1, #s[5] do fail(s[5][j], s[6][j], err) end
      end
    end
  end
end
