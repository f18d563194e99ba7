-- Shared by every script. ARGV[1] is the queue's key prefix, '{queue}:', so
-- that every key of a queue hashes to one Cluster slot (KEYS[1] is one of
-- them, for routing). A task is a hash at prefix..'t:'..id; the indexes
-- are sorted sets: delayed (by due time), ready (by priority, then
-- arrival), running (by lease expiry), dead (by arrival); counts is a hash
-- of tasks per state.
local p = ARGV[1]
local call = redis.call
local function int(x) return string.format('%d', x) end
local function tkey(id) return p .. 't:' .. id end

-- Moves task id to state `to`, keeping the indexes and counts in step
-- (a claim moves its batch to running itself: batch.lua).
local function move(id, to)
  local k = tkey(id)
  local from = call('HGET', k, 'state')
  if from == 'scheduled' or from == 'retrying' then call('ZREM', p .. 'delayed', id)
  elseif from == 'ready' then call('ZREM', p .. 'ready', id)
  elseif from == 'running' then call('ZREM', p .. 'running', id)
  elseif from == 'dead' then call('ZREM', p .. 'dead', id) end
  if from then call('HINCRBY', p .. 'counts', from, -1) end
  call('HINCRBY', p .. 'counts', to, 1)
  call('HSET', k, 'state', to)
  if to == 'scheduled' or to == 'retrying' then
    call('ZADD', p .. 'delayed', call('HGET', k, 'run_at'), id)
  elseif to == 'ready' then
    local seq = call('INCR', p .. 'seq')
    local priority = tonumber(call('HGET', k, 'priority'))
    call('ZADD', p .. 'ready', int((255 - priority) * 1099511627776 + seq), id)
  elseif to == 'dead' then
    call('ZADD', p .. 'dead', call('INCR', p .. 'seq'), id)
  end
end

-- A task whose parents are done: ready, or scheduled for its own time.
local function make_due(id, now)
  if tonumber(call('HGET', tkey(id), 'run_at')) > now then move(id, 'scheduled') else move(id, 'ready') end
end

-- A task died or was cancelled: its waiting descendants are cancelled or
-- failed per their own policy.
local function propagate(id)
  local stack = {id}
  while #stack > 0 do
    local parent = table.remove(stack)
    for _, child in ipairs(call('LRANGE', p .. 'children:' .. parent, 0, -1)) do
      local k = tkey(child)
      if call('HGET', k, 'state') == 'waiting' then
        if call('HGET', k, 'on_fail') == 'fail' then
          call('HSET', k, 'last_error', 'parent ' .. parent .. ' failed')
          move(child, 'dead')
        else
          move(child, 'cancelled')
        end
        table.insert(stack, child)
      end
    end
  end
end

-- 'ok' if id is running under token, else 'stale' or 'missing'; and the
-- task's values of the fields asked for after those two (state, token).
local function leased(id, token, ...)
  local v = call('HMGET', tkey(id), 'state', 'token', ...)
  if not v[1] then return 'missing', v end
  if v[1] ~= 'running' or v[2] ~= token then return 'stale', v end
  return 'ok', v
end
