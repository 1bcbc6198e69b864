--[[
  Entries of boards (included by the engine's scripts).

  Every board and period has, on each shard, a sorted set per board view
  (GLOBAL and each region) in board order (includes/order); the member's
  time for `earliest` ties is taken again whenever the score changes,
  increments included, so it stays true after them.
  A hash maps each player to their member (earliest boards) and another to
  their entry's version. Order and places: includes/order.
]]
--- @include "includes/order"

-- Rows { member, stored, name, metadata ('' when none), ... } of a page from
-- ZRANGE ... WITHSCORES, with the names and metadata of its players.
local function rowsOf(page, namesKey, metaKey)
  local rows = {}
  if #page == 0 then return rows end
  local ids = {}
  for i = 1, #page, 2 do ids[#ids + 1] = uidOf(page[i]) end
  local names = redis.call('HMGET', namesKey, unpack(ids))
  local meta = redis.call('HMGET', metaKey, unpack(ids))
  for i = 1, #ids do
    rows[#rows + 1] = page[2 * i - 1]
    rows[#rows + 1] = page[2 * i]
    rows[#rows + 1] = names[i] or ''
    rows[#rows + 1] = meta[i] or ''
  end
  return rows
end
