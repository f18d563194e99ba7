-- Exact sliding log: mirrors sliding_log_step. KEYS[1]: a sorted set of
-- admitted requests (score: time, member: 'seq:cost', seq zero-padded so
-- that equal times keep their arrival order); KEYS[2]: the seq counter.
local window = period
if now >= window then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(now - window))
end
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local function cost_of(member) return tonumber(string.match(member, ':(%d+)$')) end
if mode == 'refund' then
  local i = #entries - 1
  while cost > 0 and i >= 1 do
    local member, score = entries[i], entries[i + 1]
    local c = cost_of(member)
    redis.call('ZREM', KEYS[1], member)
    if c > cost then
      local seq = string.match(member, '^(%d+):')
      redis.call('ZADD', KEYS[1], score, seq .. ':' .. int(c - cost))
      cost = 0
    else
      cost = cost - c
    end
    i = i - 2
  end
  return reply(1, 0, 0, -1, 0)
end
local used = 0
for i = 1, #entries, 2 do used = used + cost_of(entries[i]) end
local reset_after = 0
if #entries > 0 then reset_after = tonumber(entries[#entries]) + window - now end
if used + cost > limit then
  local freed, wait = 0, 0
  for i = 1, #entries, 2 do
    freed = freed + cost_of(entries[i])
    wait = tonumber(entries[i + 1]) + window - now
    if used - freed + cost <= limit then break end
  end
  return reply(0, limit - used, reset_after, wait, 0)
end
if mode == 'check' then
  local seq = redis.call('INCR', KEYS[2])
  redis.call('ZADD', KEYS[1], int(now), string.format('%020.0f', seq) .. ':' .. int(cost))
  redis.call('PEXPIRE', KEYS[1], ttl_ms(window))
  redis.call('PEXPIRE', KEYS[2], ttl_ms(window))
end
return reply(1, limit - used - cost, window, -1, 0)
