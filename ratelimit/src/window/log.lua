-- Exact sliding log, on Redis: the entries of sliding_log_step in a sorted
-- set (score: time, member: 'seq:cost', seq zero-padded so that equal
-- times keep their arrival order); aux: the seq counter. Replies with the
-- cost in the window and the newest entry's time (-1: none); after a
-- denial also the oldest entries (time, cost) up to the one whose leaving
-- makes room, and the newest time with cost 0, from which the client
-- finds the retry time.
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
  -- A denial: the oldest entries, up to the one whose leaving makes room
  -- for this cost (all of them when none does), then the newest time with
  -- no cost. The client's retry time only needs those (the walk in
  -- sliding_log_step stops at the same entry), so a denial replies with
  -- one entry or a few, not the whole window.
  if #entries == 0 then return reply(out, used, last) end
  local n = #out
  local k, freed = 0, 0
  for i = 1, #entries, 2 do
    local c = cost_of(entries[i])
    out[n + 4 + 2 * k], out[n + 5 + 2 * k] = tonum(entries[i + 1]), c
    k = k + 1
    freed = freed + c
    if used - freed + cost <= limit then break end
  end
  out[n + 4 + 2 * k], out[n + 5 + 2 * k] = last, 0
  out[n + 1] = 2 + 2 * (k + 1)
  out[n + 2], out[n + 3] = used, last
end
