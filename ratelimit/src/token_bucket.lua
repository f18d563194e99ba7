-- GCRA (token bucket) and the leaky bucket, which is GCRA as a meter plus a
-- wait, on Redis: the state of gcra_step, the TAT (absent: a full bucket).
-- Applies gcra_admit / gcra_refund and replies with the TAT decided on
-- (a missing key's: now), one value per decision and no count before it,
-- from which the client derives the decision with gcra_step.
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
-- The stored text of a TAT, in one format call (no concatenation).
local tagged = '%d' .. tag
local function deadline(x) return (floor(x / quantum) + 2) * quantum / 1000 end
local function store(key, stored, same_quantum, value)
  if min_ttl > 0 then
    -- Caller-supplied time: a TTL relative to real time.
    call('SET', key, format(tagged, value), 'PX', ttl_ms(value - now))
  elseif stored and same_quantum and floor(stored / quantum) == floor(value / quantum) then
    -- The key's expiry is deadline(stored), which is also deadline(value).
    call('SET', key, format(tagged, value), 'KEEPTTL')
  else
    call('SET', key, format(tagged, value), 'PXAT', int(deadline(value)))
  end
end
-- Every key of the batch is read once and written at most once (held()
-- in the prelude): a key asked for many times in one call (a hot key:
-- many requests in flight for one client) costs one read and one write,
-- not one of each per request. The reads are one MGET: a GET per key
-- costs a script about twice as much. MGET answers nil for a missing key
-- and for a key of another type alike, so a nil is read again with GET,
-- which fails (WRONGTYPE) for the second.
local prefetched = #KEYS > 0 and call('MGET', unpack(KEYS)) or {}
-- A key's state: stored, the TAT it held (nil: absent), same_quantum,
-- whether its TTL was set for this quantum, tat, the TAT after the
-- batch's decisions so far, and dirty.
local function read(key, i)
  local raw = prefetched[i] or call('GET', key)
  local stored, same_quantum = nil, false
  if raw then
    local v, q = match(raw, '^(%d+) ?(%d*)$')
    stored, same_quantum = tonum(v), q == quantum_text
  end
  return {stored = stored, same_quantum = same_quantum, tat = stored, dirty = false}
end
local function decide(key, _, mode, cost, out, i)
  local s = held(key, read, i)
  local current = s.tat
  local start = #out + 1
  if mode == 'refund' then
    if current and current > now then
      s.tat, s.dirty = max(current - t * cost, now), true
    end
    -- A refund's reply is not used.
    out[start] = 0
  else
    local tat = current or now
    if mode == 'check' and now >= tat + t * (cost - 1) - tau then
      s.tat, s.dirty = max(tat, now) + t * cost, true
    end
    -- One value per decision, not reply()'s count and values: each value
    -- costs the client a parse.
    out[start] = tat
  end
end
store_held = function(key, s)
  store(key, s.stored, s.same_quantum, s.tat)
end
