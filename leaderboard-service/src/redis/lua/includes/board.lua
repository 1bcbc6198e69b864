--[[
  Entries of named boards (included by the board-* scripts).

  Every board and period has, on each shard, a sorted set per board view
  (GLOBAL and each region) whose ascending order is board order:
  - the stored score is the score for `asc` boards and its negation for
    `desc` boards (so lower stored = better either way; `stored()` from
    includes/contract negates);
  - the member is the user id for `shared` ties (equal scores list by
    user_id), and `<16-digit µs when the score was reached>|<user id>` for
    `earliest` ties, so among equal scores the first to reach it comes
    first; the time is taken again whenever the score changes, increments
    included, so it stays true after them.
  A hash maps each player to their member (earliest boards) and another to
  their entry's version.
]]

-- The stored form of a score on a board of this order.
local function storedFor(order, score)
  if order == 'desc' then return stored(score) end
  return int(score)
end

-- The score from its stored form.
local function scoreOf(order, s)
  local n = tonumber(s)
  if order == 'desc' then n = 0 - n end
  if n == 0 then n = 0 end
  return n
end

-- The user id inside a member.
local function uidOf(member)
  local bar = string.find(member, '|', 1, true)
  if bar then return string.sub(member, bar + 1) end
  return member
end

-- Byte-wise comparison: Lua's '<' on strings follows the C locale collation
-- (strcoll), which need not be the byte order Redis sorts members by.
local function less(a, b)
  local la, lb = #a, #b
  for i = 1, math.min(la, lb) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return la < lb
end

-- How many members of `z` come before the key (stored, member) in board order.
local function positionOf(z, storedScore, member)
  local lo = redis.call('ZCOUNT', z, '-inf', '(' .. storedScore)
  local hi = lo + redis.call('ZCOUNT', z, storedScore, storedScore)
  -- Binary search inside the block of equal scores for the first member >= member.
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local m = redis.call('ZRANGE', z, mid, mid)[1]
    if less(m, member) then lo = mid + 1 else hi = mid end
  end
  return lo
end

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
