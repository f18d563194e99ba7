-- The reply: `now`, then per request the count of its values and the
-- values (the state it was decided on; the buckets: the TAT alone), or -1
-- where the decision failed. All of these are integers, sent packed as
-- one string of 8-byte little-endian numbers (the client parses a reply
-- value at a cost of its own, which per number exceeds the whole
-- decision's), followed by the failed decisions' error texts, in order.
--
-- A decision that fails (a key of another type under the prefix:
-- WRONGTYPE) fails alone and every other decision of the batch stands. A
-- decision reads before it writes and appends to the reply last, so a
-- failed one has written nothing. One pcall covers the whole batch (not
-- one per decision, which costs Lua a frame each); when it catches
-- an error, the failed decision's partial reply is cut, -1 put in its
-- place and its text kept, and the batch goes on from the next decision.
local out, errors = {now}, {}
-- The place in `out` of each failed decision's -1, in step with `errors`.
local failed_at = {}
local stride, modes, same_cost = tonum(ARGV[6]), ARGV[7], tonum(ARGV[8])
local total = #modes
local names = {[99] = 'check', [112] = 'peek', [114] = 'refund'}
local byte = string.byte
local next_i, mark = 1, 1
local function run()
  for i = next_i, total do
    local k = stride * (i - 1)
    next_i, mark = i, #out
    local mode = names[byte(modes, i)]
    decide(KEYS[k + 1], KEYS[k + stride], mode, same_cost or tonum(ARGV[8 + i]), out, i)
  end
  next_i = total + 1
end
while next_i <= total do
  local ok, err = pcall(run)
  if not ok then
    for j = #out, mark + 1, -1 do out[j] = nil end
    out[mark + 1] = -1
    errors[#errors + 1] = type(err) == 'table' and (err.err or 'error') or tostring(err)
    failed_at[#failed_at + 1] = mark + 1
    next_i = next_i + 1
  end
end
-- An algorithm that defers its writes to the end of the batch (flush, set
-- by the algorithm) fails a decision after the loop, by the place and
-- length of its reply in `out`: the reply becomes one -1, and its error
-- text takes its place among the others, in decision order.
if flush then
  local late = {}
  flush(function(start, len, err)
    late[#late + 1] = {start, len, type(err) == 'table' and (err.err or 'error') or tostring(err)}
  end)
  if #late > 0 then
    table.sort(late, function(a, b) return a[1] < b[1] end)
    -- `out` again, each failed reply cut down to its -1.
    local kept, n = {}, 1
    for _, f in ipairs(late) do
      for j = n, f[1] - 1 do kept[#kept + 1] = out[j] end
      kept[#kept + 1] = -1
      n = f[1] + f[2]
    end
    for j = n, #out do kept[#kept + 1] = out[j] end
    out = kept
    -- The error texts, the loop's and these, in the order of their places.
    for j = 1, #errors do late[#late + 1] = {failed_at[j], 1, errors[j]} end
    table.sort(late, function(a, b) return a[1] < b[1] end)
    errors = {}
    for j = 1, #late do errors[j] = late[j][3] end
  end
end
-- Packed a thousand numbers per struct.pack call (unpack has a limit).
local packed = {}
for from = 1, #out, 1000 do
  local to = min(from + 999, #out)
  packed[#packed + 1] = struct.pack('<' .. string.rep('i8', to - from + 1), unpack(out, from, to))
end
local result = {table.concat(packed)}
for j = 1, #errors do result[j + 1] = errors[j] end
return result
