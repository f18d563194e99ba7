-- GCRA (token bucket) and the leaky bucket, which is GCRA as a meter plus a
-- wait: mirrors gcra_step / gcra_refund / leaky_step.
-- KEYS[1]: the bucket's TAT. ARGV[7]: tau.
local tau = tonumber(ARGV[7])
local t = period
local stored = tonumber(redis.call('GET', KEYS[1]))
if mode == 'refund' then
  if stored and stored > now then
    local tat = math.max(stored - t * cost, now)
    redis.call('SET', KEYS[1], int(tat), 'PX', ttl_ms(tat - now))
  end
  return reply(1, 0, 0, -1, 0)
end
local tat = stored or now
local earliest = math.max(tat + t * (cost - 1) - tau, 0)
local function remaining_at(after)
  return math.min(math.floor(math.max(now + tau + t - math.max(after, now), 0) / t), limit)
end
if now < earliest then
  return reply(0, remaining_at(tat), math.max(tat - now, 0), earliest - now, 0)
end
local next = math.max(tat, now) + t * cost
if mode == 'check' then
  -- The state vanishes when the bucket is full again: as good as fresh.
  redis.call('SET', KEYS[1], int(next), 'PX', ttl_ms(next - now))
end
return reply(1, remaining_at(next), next - now, -1, math.max(tat - now, 0))
