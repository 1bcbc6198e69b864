--[[
  Board order, the Lua side (the TypeScript side is @lb/common ranking.ts;
  both must agree, and the tests run them against each other).

  Every view of every board is a sorted set whose ascending order is board
  order: (stored score, member) ascending.
  - The stored score is the score on `asc` boards and its negation on `desc`
    boards, so a lower stored score is a better one either way.
  - The member is the user id (`shared` ties: equal scores list by user id),
    or `<16-digit µs when the score was reached>|<user id>` (`earliest` ties).
  - `shared` ranks count the players with a strictly better score;
    `earliest` ranks count the players before the entry (positionOf).
]]
--- @include "includes/contract"

-- The stored (negated) form of a score on a `desc` board.
local function stored(score)
  if score == 0 then return '0' end
  return int(0 - score)
end

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
