-- The batch transitions of a worker's turn, shared by acks.lua, claim.lua
-- and ack_claim.lua (after prelude.lua).

-- ZADD of every id in `ids` at one score, a thousand members a call (Lua's
-- unpack has a limit).
local function add_all(key, score, ids)
  for from = 1, #ids, 1000 do
    local args = {}
    for i = from, math.min(from + 999, #ids) do
      args[#args + 1] = score
      args[#args + 1] = ids[i]
    end
    call('ZADD', key, unpack(args))
  end
end

-- ZREM of every id in `ids`, a thousand a call.
local function remove_all(key, ids)
  for from = 1, #ids, 1000 do
    call('ZREM', key, unpack(ids, from, math.min(from + 999, #ids)))
  end
end

-- Acks the pairs of id and token in ARGV from index `from` on. Returns one
-- status per pair, in order: 'ok', 'stale' or 'missing'. Each ack reads
-- and writes its own hash; the running set and the counts change once for
-- the batch.
local function ack_all(now, retention, from)
  local out, done = {}, {}
  for i = from, #ARGV - 1, 2 do
    local id = ARGV[i]
    local k = tkey(id)
    -- kids: 0 when no task names this one as a parent (a task stored
    -- before the field existed has none: its children list is read).
    local status, v = leased(id, ARGV[i + 1], 'last_error', 'kids')
    if status == 'ok' then
      if v[3] then call('HDEL', k, 'last_error') end
      call('HSET', k, 'state', 'succeeded')
      call('PEXPIRE', k, retention)
      done[#done + 1] = id
      if v[4] ~= '0' then
        local children = call('LRANGE', p .. 'children:' .. id, 0, -1)
        for _, child in ipairs(children) do
          local ck = tkey(child)
          if call('HGET', ck, 'state') == 'waiting' and call('HINCRBY', ck, 'parents_left', -1) <= 0 then
            make_due(child, now)
          end
        end
        if #children > 0 then call('PEXPIRE', p .. 'children:' .. id, retention) end
      end
    end
    out[#out + 1] = status
  end
  remove_all(p .. 'running', done)
  if #done > 0 then
    call('HINCRBY', p .. 'counts', 'running', -#done)
    call('HINCRBY', p .. 'counts', 'succeeded', #done)
  end
  return out
end

-- Makes due tasks ready, then claims up to `max` ready ones under a lease
-- until now + lease. Returns when the next delayed task is due ('-1':
-- none), then six values per claimed task: id, name, payload, attempt,
-- token, last delay. The claimed tasks leave the ready set in one range
-- and enter the running set in one ZADD (the set's score is the lease's
-- end); each costs two calls of its own (read its fields, write its
-- lease), and the counts move once for the batch.
local function claim_batch(now, lease, max)
  for _, id in ipairs(call('ZRANGEBYSCORE', p .. 'delayed', '-inf', now, 'LIMIT', 0, 1000)) do
    move(id, 'ready')
  end
  local out = {}
  local next_due = call('ZRANGE', p .. 'delayed', 0, 0, 'WITHSCORES')
  out[1] = next_due[2] or '-1'
  -- The first `max` by score (then by id), as ZPOPMIN would give them,
  -- taken off the set in one pass: cheaper than ZPOPMIN's one delete per
  -- member.
  if tonumber(max) < 1 then return out end
  local popped = call('ZRANGE', p .. 'ready', 0, int(max - 1))
  local n = #popped
  if n == 0 then return out end
  call('ZREMRANGEBYRANK', p .. 'ready', 0, n - 1)
  local first = call('INCRBY', p .. 'token', n) - n
  local lease_until = int(now + lease)
  for i = 1, n do
    local id = popped[i]
    local k = tkey(id)
    local v = call('HMGET', k, 'attempts', 'name', 'payload', 'last_delay')
    local attempts, token = int((tonumber(v[1]) or 0) + 1), int(first + i)
    call('HSET', k, 'attempts', attempts, 'token', token, 'state', 'running')
    local at = 1 + 6 * (i - 1)
    out[at + 1], out[at + 2], out[at + 3] = id, v[2], v[3]
    out[at + 4], out[at + 5], out[at + 6] = attempts, token, v[4]
  end
  add_all(p .. 'running', lease_until, popped)
  call('HINCRBY', p .. 'counts', 'ready', -n)
  call('HINCRBY', p .. 'counts', 'running', n)
  return out
end
