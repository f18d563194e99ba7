-- GCRA (token bucket) and the leaky bucket, which is GCRA as a meter plus a
-- wait, on Redis: the state of gcra_step, the TAT (absent: a full bucket).
-- Applies gcra_admit / gcra_refund and replies with the TAT decided on
-- (-1: none), from which the client derives the decision with gcra_step.
local t = period
-- Idle keys must vanish, but setting a TTL on every write costs more than
-- the write. So the expiry is a step function of the stored TAT: on the
-- server clock, a key holding TAT x expires at deadline(x), the end of the
-- quantum after x's (later than x, so never before the bucket is full
-- again, and at most two quanta after). A write that stays in the same
-- quantum keeps the TTL; only one that crosses a quantum boundary sets it.
-- The stored value is 'TAT quantum': a limiter reconfigured under the same
-- prefix (another quantum) never keeps a TTL that an older, shorter quantum
-- set, which would let the key vanish (the bucket refill) early.
local quantum = max(tau + t, 1000000)
local quantum_text = int(quantum)
local tag = ' ' .. quantum_text
local function deadline(x) return (floor(x / quantum) + 2) * quantum / 1000 end
local function store(key, stored, same_quantum, value)
  if min_ttl > 0 then
    -- Caller-supplied time: a TTL relative to real time.
    call('SET', key, int(value) .. tag, 'PX', ttl_ms(value - now))
  elseif stored and same_quantum and floor(stored / quantum) == floor(value / quantum) then
    -- The key's expiry is deadline(stored), which is also deadline(value).
    call('SET', key, int(value) .. tag, 'KEEPTTL')
  else
    call('SET', key, int(value) .. tag, 'PXAT', int(deadline(value)))
  end
end
local function decide(key, _, mode, cost, out)
  local raw = call('GET', key)
  local stored, same_quantum = nil, false
  if raw then
    local v, q = match(raw, '^(%d+) ?(%d*)$')
    stored, same_quantum = tonum(v), q == quantum_text
  end
  if mode == 'refund' then
    if stored and stored > now then
      store(key, stored, same_quantum, max(stored - t * cost, now))
    end
    return reply(out)
  end
  local tat = stored or now
  if mode == 'check' and now >= tat + t * (cost - 1) - tau then
    store(key, stored, same_quantum, max(tat, now) + t * cost)
  end
  -- reply(out, tat), without the varargs: this is the hot path.
  local n = #out
  out[n + 1] = 1
  out[n + 2] = tat
end
