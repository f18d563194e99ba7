--
-- Each decision runs under pcall, so one that fails (a key of another type
-- under the prefix: WRONGTYPE) fails alone: its first value is then the
-- error's text, and every other decision of the batch stands. A decision
-- reads before it writes, so a failed one has written nothing.
local out = {now}
local stride = tonum(ARGV[6])
for i = 1, (#ARGV - 6) / 2 do
  local k = stride * (i - 1)
  local ok, a, b, c, d, e = pcall(decide, KEYS[k + 1], KEYS[k + stride], ARGV[5 + 2 * i], tonum(ARGV[6 + 2 * i]))
  if not ok then
    a = type(a) == 'table' and (a.err or 'error') or tostring(a)
    b, c, d, e = 0, 0, 0, 0
  end
  local n = #out
  out[n + 1] = a
  if width == 5 then
    out[n + 2], out[n + 3], out[n + 4], out[n + 5] = b, c, d, e
  end
end
return out
