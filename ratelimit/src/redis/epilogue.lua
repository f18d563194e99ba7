-- The reply: `now`, then per request the count of its values and the
-- values (the state it was decided on), or -1 and an error's text.
--
-- A decision that fails (a key of another type under the prefix:
-- WRONGTYPE) fails alone and every other decision of the batch stands. A
-- decision reads before it writes and appends to the reply last, so a
-- failed one has written nothing. One pcall covers the whole batch (not
-- one per decision, which costs Lua a frame each); when it catches
-- an error, the failed decision's partial reply is cut, its error put in
-- its place, and the batch goes on from the next decision.
local out = {now}
local stride = tonum(ARGV[6])
local total = (#ARGV - 6) / 2
local next_i, mark = 1, 1
local function run()
  for i = next_i, total do
    local k = stride * (i - 1)
    next_i, mark = i, #out
    decide(KEYS[k + 1], KEYS[k + stride], ARGV[5 + 2 * i], tonum(ARGV[6 + 2 * i]), out)
  end
  next_i = total + 1
end
while next_i <= total do
  local ok, err = pcall(run)
  if not ok then
    for j = #out, mark + 1, -1 do out[j] = nil end
    out[mark + 1] = -1
    out[mark + 2] = type(err) == 'table' and (err.err or 'error') or tostring(err)
    next_i = next_i + 1
  end
end
return out
