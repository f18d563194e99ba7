-- Exact sliding log, on Redis: the entries of sliding_log_step in a sorted
-- set (score: time, member: 'seq:cost', seq zero-padded so that equal
-- times keep their arrival order); aux: the seq counter. Replies with the
-- cost in the window and the newest entry's time (-1: none); after a
-- denial also every entry in the window, oldest first (time, cost), from
-- which the client finds the retry time.
-- Cost: each decision reads the whole set, O(limit) (at most `limit`
-- members), so the log suits limits of up to a few thousand per key; use
-- the sliding window counter (O(1)) for larger ones.
local window = period
local function cost_of(member) return tonum(match(member, ':(%d+)$')) end
local function decide(key, seq_key, mode, cost, out)
  -- As in sliding_log_step: time never goes back before the newest entry.
  local newest = call('ZRANGE', key, -1, -1, 'WITHSCORES')
  local t = now
  if newest[2] then t = max(now, tonum(newest[2])) end
  if t >= window then
    call('ZREMRANGEBYSCORE', key, '-inf', int(t - window))
  end
  local entries = call('ZRANGE', key, 0, -1, 'WITHSCORES')
  if mode == 'refund' then
    -- As Log::refund: the most recent admissions first.
    local i = #entries - 1
    while cost > 0 and i >= 1 do
      local member, score = entries[i], entries[i + 1]
      local c = cost_of(member)
      call('ZREM', key, member)
      if c > cost then
        call('ZADD', key, score, match(member, '^(%d+):') .. ':' .. int(c - cost))
        cost = 0
      else
        cost = cost - c
      end
      i = i - 2
    end
    return reply(out)
  end
  local used = 0
  for i = 1, #entries, 2 do used = used + cost_of(entries[i]) end
  local last = -1
  if #entries > 0 then last = tonum(entries[#entries]) end
  if used + cost <= limit then
    if mode == 'check' then
      local seq = call('INCR', seq_key)
      call('ZADD', key, int(t), format('%020d', seq) .. ':' .. int(cost))
      call('PEXPIRE', key, ttl_ms(t + window - now))
      call('PEXPIRE', seq_key, ttl_ms(t + window - now))
    end
    return reply(out, used, last)
  end
  local n = #out
  out[n + 1] = 2 + #entries
  out[n + 2], out[n + 3] = used, last
  for i = 1, #entries, 2 do
    out[n + 3 + i], out[n + 4 + i] = tonum(entries[i + 1]), cost_of(entries[i])
  end
end
