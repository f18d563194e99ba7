-- ARGV[2]: now, ARGV[3]: the tasks as a JSON array, parents before children.
local now = tonumber(ARGV[2])
local tasks = cjson.decode(ARGV[3])
local batch = {}
for _, t in ipairs(tasks) do
  if call('EXISTS', tkey(t.id)) == 1 or batch[t.id] then return {'duplicate', t.id} end
  for _, parent in ipairs(t.parents) do
    if not batch[parent] and call('EXISTS', tkey(parent)) == 0 then return {'unknown_parent', parent} end
  end
  batch[t.id] = true
end
local out = {'ok'}
-- A task of the batch that was not added (its idempotency key is live)
-- stands for the task that was: its children wait for that one.
local alias = {}
for _, t in ipairs(tasks) do
  local duplicate = false
  if t.idem_key ~= cjson.null then
    -- The key holds 'id|expiry' and expires with its window; the expiry
    -- is checked against the caller's clock, the TTL only collects garbage.
    local ik = p .. 'idem:' .. t.idem_key
    local existing = call('GET', ik)
    local sep = existing and string.find(existing, '|', 1, true)
    if sep and tonumber(string.sub(existing, sep + 1)) > now then
      alias[t.id] = string.sub(existing, 1, sep - 1)
      table.insert(out, 'dup:' .. alias[t.id])
      duplicate = true
    else
      call('SET', ik, t.id .. '|' .. int(now + t.idem_window), 'PX', math.max(1, t.idem_window))
    end
  end
  if not duplicate then
    local k = tkey(t.id)
    local left, failed = 0, nil
    for _, named in ipairs(t.parents) do
      local parent = alias[named] or named
      -- A parent that is gone was forgotten after succeeding (only
      -- succeeded tasks are forgotten): nothing to wait for.
      local state = call('HGET', tkey(parent), 'state')
      if state then
        call('RPUSH', p .. 'children:' .. parent, t.id)
        call('HSET', tkey(parent), 'kids', 1)
      end
      if state == 'dead' or state == 'cancelled' then failed = failed or parent
      elseif state and state ~= 'succeeded' then left = left + 1 end
    end
    call('HSET', k, 'name', t.name, 'payload', t.payload, 'priority', t.priority,
      'run_at', int(t.run_at), 'attempts', 0, 'token', 0,
      'last_delay', 0, 'parents_left', left, 'on_fail', t.on_fail, 'kids', 0)
    move(t.id, 'waiting')
    if failed then
      if t.on_fail == 'fail' then
        call('HSET', k, 'last_error', 'parent ' .. failed .. ' failed')
        move(t.id, 'dead')
      else
        move(t.id, 'cancelled')
      end
    elseif left == 0 then
      make_due(t.id, now)
    end
    table.insert(out, 'new:' .. t.id)
  end
end
return out
