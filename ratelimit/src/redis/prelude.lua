-- Shared by every script. One call serves a batch of requests, in order,
-- atomically, at one instant. Times are integer microseconds; Lua numbers
-- are doubles, exact for integers up to 2^53, which RedisLimiter::new checks.
--
-- The scripts only read and write each algorithm's state: each applies the
-- algorithm's admission rule (so that the write is atomic) and returns the
-- state it decided on. The client then makes the decision (remaining,
-- reset, retry) with the same pure Rust step as the in-process limiter.
--
-- ARGV[1]: now ('' = this server's TIME), ARGV[2]: limit, ARGV[3]: the
-- algorithm's period (t or window), ARGV[4]: the shortest key TTL in ms (0
-- on server time; longer when the caller supplies its own clock, whose
-- spans need not match real time), ARGV[5]: the GCRA tolerance tau,
-- ARGV[6]: keys per request (1, or 2 for the log, whose second key is its
-- sequence counter), ARGV[7]: the requests' modes, one letter each (c:
-- check, p: peek, r: refund), ARGV[8]: the cost of every request, or ''
-- when they differ and ARGV[8 + i] is request i's. A request's keys are
-- all in one hash slot.
local now = tonumber(ARGV[1])
if not now then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end
local limit = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local min_ttl = tonumber(ARGV[4])
local tau = tonumber(ARGV[5])
-- Globals are table lookups in Lua 5.1: keep the functions used per
-- decision in locals.
local call, floor, ceil, max, min = redis.call, math.floor, math.ceil, math.max, math.min
local format, match, tonum, select = string.format, string.match, tonumber, select
local function int(x) return format('%d', x) end
local function ttl_ms(us) return max(1, ceil(us / 1000), min_ttl) end
-- Appends one decision's values to the reply: their count, then them.
local function reply(out, ...)
  local n, count = #out, select('#', ...)
  out[n + 1] = count
  for j = 1, count do out[n + 1 + j] = (select(j, ...)) end
end
-- Keys written once per batch (the buckets, the fixed window and the
-- sliding counter; the log writes within each decision). Each key is read
-- once, by held(key, read, i), where read(key, i) returns its state as a
-- table; the batch's decisions on the key change that table (setting
-- dirty when it needs writing). After the last decision the epilogue
-- writes each changed key once, by store_held(key, state), which the
-- algorithm sets; a write that fails fails every decision of the batch on
-- that key (the epilogue finds them by their key: the state keeps no list
-- of them, which would cost two tables a key in every batch).
local store_held
local held_states, held_order = {}, {}
local function held(key, read, i)
  local s = held_states[key]
  if not s then
    s = read(key, i)
    held_states[key] = s
    held_order[#held_order + 1] = key
  end
  return s
end
-- Each algorithm defines decide(key, aux, mode, cost, out, i), which
-- appends its state to `out` as its last step: with reply(), or (the
-- buckets, whose state is one number) that number alone. i is the
-- request's place in the batch.
