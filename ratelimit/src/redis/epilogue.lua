-- The reply: `now`, then per request the count of its values and the
-- values (the state it was decided on; the buckets: the TAT alone), or -1
-- where the decision failed. All of these are integers, sent packed as
-- one string of 8-byte little-endian numbers (the client parses a reply
-- value at a cost of its own, which per number exceeds the whole
-- decision's), followed by the failed decisions' error texts, in order.
--
-- A decision that fails (a key of another type under the prefix:
-- WRONGTYPE) fails alone and every other decision of the batch stands. A
-- decision reads before it writes (a held key is written after the last
-- decision, below) and appends to the reply last, so a failed one has
-- written nothing. One pcall covers the whole batch (not
-- one per decision, which costs Lua a frame each); when it catches
-- an error, the failed decision's partial reply is cut, -1 put in its
-- place and its text kept, and the batch goes on from the next decision.
--
-- failures: per failed decision, the place of its -1 in `out` and its
-- error text.
local out, failures = {now}, {}
local function error_text(err)
  return type(err) == 'table' and (err.err or 'error') or tostring(err)
end
local stride, modes, same_cost = tonum(ARGV[6]), ARGV[7], tonum(ARGV[8])
local total = #modes
local names = {[99] = 'check', [112] = 'peek', [114] = 'refund'}
local byte = string.byte
-- starts[i]: where request i's reply begins in `out` (it runs to the
-- next one's start); failed[i]: whether request i failed.
local starts, failed = {}, {}
local next_i, mark = 1, 1
local function run()
  for i = next_i, total do
    local k = stride * (i - 1)
    next_i, mark = i, #out
    starts[i] = mark + 1
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
    failures[#failures + 1] = {mark + 1, error_text(err)}
    failed[next_i] = true
    next_i = next_i + 1
  end
end
-- The held keys' writes (see the prelude). A decision that fails here
-- has its reply, already in `out`, cut down to one -1.
if store_held then
  local cut = {}
  for _, key in ipairs(held_order) do
    local s = held_states[key]
    if s.dirty then
      local ok, err = pcall(store_held, key, s)
      if not ok then
        -- The decisions on this key (each request's first key is the one
        -- held), those that had not already failed.
        for i = 1, total do
          if not failed[i] and KEYS[stride * (i - 1) + 1] == key then
            cut[#cut + 1] = {starts[i], (starts[i + 1] or #out + 1) - starts[i]}
            failures[#failures + 1] = {starts[i], error_text(err)}
          end
        end
      end
    end
  end
  if #cut > 0 then
    table.sort(cut, function(a, b) return a[1] < b[1] end)
    local kept, n = {}, 1
    for _, c in ipairs(cut) do
      for j = n, c[1] - 1 do kept[#kept + 1] = out[j] end
      kept[#kept + 1] = -1
      n = c[1] + c[2]
    end
    for j = n, #out do kept[#kept + 1] = out[j] end
    out = kept
    -- The error texts go in the order of the decisions they belong to.
    table.sort(failures, function(a, b) return a[1] < b[1] end)
  end
end
-- Packed a thousand numbers per struct.pack call (unpack has a limit).
local packed = {}
for from = 1, #out, 1000 do
  local to = min(from + 999, #out)
  packed[#packed + 1] = struct.pack('<' .. string.rep('i8', to - from + 1), unpack(out, from, to))
end
local result = {table.concat(packed)}
for j = 1, #failures do result[j + 1] = failures[j][2] end
return result
