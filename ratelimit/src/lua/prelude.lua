-- Shared by every script. Times are integer microseconds; Lua numbers are
-- doubles, exact for integers up to 2^53, which RedisLimiter::new checks.
-- ARGV[1]: now ('' = this server's TIME), ARGV[2]: mode (check, peek, refund),
-- ARGV[3]: cost, ARGV[4]: limit, ARGV[5]: the algorithm's period (t or window),
-- ARGV[6]: the shortest key TTL in ms (0 on server time; longer when the
-- caller supplies its own clock, whose spans need not match real time).
local now = tonumber(ARGV[1])
if not now then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end
local mode = ARGV[2]
local cost = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local period = tonumber(ARGV[5])
local function int(x) return string.format('%.0f', x) end
local min_ttl = tonumber(ARGV[6])
local function ttl_ms(us) return math.max(1, math.ceil(us / 1000), min_ttl) end
-- The reply: allowed (0/1), remaining, reset_after, retry_after (-1: none), wait.
local function reply(allowed, remaining, reset_after, retry_after, wait)
  return {allowed, remaining, reset_after, retry_after, wait}
end
