-- Fixed window, on Redis: the state of fixed_window_step in a hash
-- {w = window index, c = count}. Replies with the stored (w, c).
--
-- Each key is read once and written at most once per batch (held() in
-- the prelude): store_held() writes its final state, with the expiry that
-- the batch's last admission set, after the last decision.
local window = period
-- A key's state: w, c, dirty, and ttl, the expiry in ms that the last
-- admission set (nil: none, the key keeps its own).
local function read(key)
  local v = call('HMGET', key, 'w', 'c')
  return {w = tonum(v[1]) or 0, c = tonum(v[2]) or 0, dirty = false}
end
local function decide(key, _, mode, cost, out)
  local s = held(key, read)
  local w, c = s.w, s.c
  if mode == 'refund' then
    if c > 0 and w >= floor(now / window) then
      s.c, s.dirty = max(c - cost, 0), true
    end
    reply(out)
  else
    -- As in fixed_window_step: time never goes back inside the state.
    local current = floor(max(now, w * window) / window)
    local count = 0
    if w == current then count = c end
    if mode == 'check' and count + cost <= limit then
      s.w, s.c, s.dirty = current, count + cost, true
      s.ttl = ttl_ms((current + 1) * window - now)
    end
    reply(out, w, c)
  end
end
store_held = function(key, s)
  call('HSET', key, 'w', int(s.w), 'c', int(s.c))
  if s.ttl then call('PEXPIRE', key, s.ttl) end
end
