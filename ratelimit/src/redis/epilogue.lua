-- The reply: `now`, then per request the count of its values and the
-- values (the state it was decided on), or -1 and an error's text.
--
-- Each decision runs under pcall, so one that fails (a key of another type
-- under the prefix: WRONGTYPE) fails alone and every other decision of the
-- batch stands. A decision reads before it writes and appends to the reply
-- last, so a failed one has written nothing.
local out = {now}
local stride = tonum(ARGV[6])
for i = 1, (#ARGV - 6) / 2 do
  local k = stride * (i - 1)
  local n = #out
  local ok, err = pcall(decide, KEYS[k + 1], KEYS[k + stride], ARGV[5 + 2 * i], tonum(ARGV[6 + 2 * i]), out)
  if not ok then
    for j = #out, n + 1, -1 do out[j] = nil end
    out[n + 1] = -1
    out[n + 2] = type(err) == 'table' and (err.err or 'error') or tostring(err)
  end
end
return out
