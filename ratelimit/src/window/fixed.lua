-- Fixed window, on Redis: the state of fixed_window_step in a hash
-- {w = window index, c = count}. Replies with the stored (w, c).
local window = period
local function decide(key, _, mode, cost, out)
  local state = call('HMGET', key, 'w', 'c')
  local w, c = tonum(state[1]) or 0, tonum(state[2]) or 0
  if mode == 'refund' then
    if c > 0 and w >= floor(now / window) then
      call('HSET', key, 'c', int(max(c - cost, 0)))
    end
    return reply(out)
  end
  -- As in fixed_window_step: time never goes back inside the state.
  local current = floor(max(now, w * window) / window)
  local count = 0
  if w == current then count = c end
  if mode == 'check' and count + cost <= limit then
    call('HSET', key, 'w', int(current), 'c', int(count + cost))
    call('PEXPIRE', key, ttl_ms((current + 1) * window - now))
  end
  reply(out, w, c)
end
