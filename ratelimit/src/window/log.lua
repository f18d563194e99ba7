-- Exact sliding log: mirrors sliding_log_step. The state: a sorted set of
-- admitted requests (score: time, member: 'seq:cost', seq zero-padded so
-- that equal times keep their arrival order); aux: the seq counter.
-- Cost: each decision reads the whole set, O(limit) (at most `limit`
-- members), so the log suits limits of up to a few thousand per key; use
-- the sliding window counter (O(1)) for larger ones.
local width = 5
local window = period
local function cost_of(member) return tonum(match(member, ':(%d+)$')) end
local function decide(key, seq_key, mode, cost)
  if now >= window then
    call('ZREMRANGEBYSCORE', key, '-inf', int(now - window))
  end
  local entries = call('ZRANGE', key, 0, -1, 'WITHSCORES')
  if mode == 'refund' then
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
    return 1, 0, 0, -1, 0
  end
  local used = 0
  for i = 1, #entries, 2 do used = used + cost_of(entries[i]) end
  local reset_after = 0
  if #entries > 0 then reset_after = tonum(entries[#entries]) + window - now end
  if used + cost > limit then
    local freed, wait = 0, 0
    for i = 1, #entries, 2 do
      freed = freed + cost_of(entries[i])
      wait = tonum(entries[i + 1]) + window - now
      if used - freed + cost <= limit then break end
    end
    return 0, limit - used, reset_after, wait, 0
  end
  if mode == 'check' then
    local seq = call('INCR', seq_key)
    call('ZADD', key, int(now), format('%020d', seq) .. ':' .. int(cost))
    call('PEXPIRE', key, ttl_ms(window))
    call('PEXPIRE', seq_key, ttl_ms(window))
  end
  return 1, limit - used - cost, window, -1, 0
end
