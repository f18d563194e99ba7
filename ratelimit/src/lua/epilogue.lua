local out = {now}
local stride = tonum(ARGV[6])
for i = 1, (#ARGV - 6) / 2 do
  local k = stride * (i - 1)
  local a, b, c, d, e = decide(KEYS[k + 1], KEYS[k + stride], ARGV[5 + 2 * i], tonum(ARGV[6 + 2 * i]))
  local n = #out
  out[n + 1] = a
  if width == 5 then
    out[n + 2], out[n + 3], out[n + 4], out[n + 5] = b, c, d, e
  end
end
return out
