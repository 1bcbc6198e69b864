--[[
  Where a player stands on one board of this shard, and (optionally) the rows
  just above and below that place.

  The place is the key (negScore, user_id) in board order. When ARGV[2] is ''
  the score is looked up here; if the player is not on this board the answer
  is "not found" and only the board size is returned. Otherwise the given
  score is used: the player may live on another shard (GLOBAL board), and this
  shard contributes the players around that key.

  Input:
    KEYS[1]  board (sorted set of negated scores)
    KEYS[2]  names hash (user_id -> name)
    KEYS[3]  user hash of ARGV[1] on this shard (may not exist)
    ARGV[1]  user id
    ARGV[2]  negated score, or '' to look it up here
    ARGV[3]  range: rows wanted above and below (0 = counts only)

  Answers (see includes/contract):
    not_found  total                           not on this board (lookup mode)
    found      score (stored form), name, region, total, higher, lower, position,
               first_above_higher, above, below (rows: { uid, storedScore, name, ... })
    where position = players before the key here, higher/lower = players with
    a strictly higher/lower score here, first_above_higher = players with a
    strictly higher score than the first row above (0 when there is none).
]]
--- @include "includes/order"

local board, uid = KEYS[1], ARGV[1]
local range = tonumber(ARGV[3])
local total = redis.call('ZCARD', board)
local negScore = ARGV[2]
local name, region = '', ''
local rank = false
if negScore == '' then
  local s = redis.call('ZSCORE', board, uid)
  if not s then return { 'not_found', 'total', total } end
  negScore = s
  rank = redis.call('ZRANK', board, uid)
  local meta = redis.call('HMGET', KEYS[3], 'name', 'region')
  name, region = meta[1] or '', meta[2] or ''
end

local higher = redis.call('ZCOUNT', board, '-inf', '(' .. negScore)
local lower = redis.call('ZCOUNT', board, '(' .. negScore, '+inf')

-- position: how many members come before the key (negScore, uid).
local position, present
if rank then
  position, present = rank, true
else
  position = positionOf(board, negScore, uid)
  present = position < total - lower and redis.call('ZRANGE', board, position, position)[1] == uid
end

local above, below = {}, {}
if range > 0 then
  if position > 0 then
    above = redis.call('ZRANGE', board, math.max(0, position - range), position - 1, 'WITHSCORES')
  end
  local start = position
  if present then start = position + 1 end
  below = redis.call('ZRANGE', board, start, start + range - 1, 'WITHSCORES')
end

local firstAboveHigher = 0
if #above > 0 then firstAboveHigher = redis.call('ZCOUNT', board, '-inf', '(' .. above[2]) end

local ids = {}
for i = 1, #above, 2 do ids[#ids + 1] = above[i] end
for i = 1, #below, 2 do ids[#ids + 1] = below[i] end
local names = {}
if #ids > 0 then names = redis.call('HMGET', KEYS[2], unpack(ids)) end
local j = 0
local function withNames(list)
  local rows = {}
  for i = 1, #list, 2 do
    j = j + 1
    rows[#rows + 1] = list[i]
    rows[#rows + 1] = list[i + 1]
    rows[#rows + 1] = names[j] or ''
  end
  return rows
end
local aboveRows = withNames(above)
local belowRows = withNames(below)
return { 'found', 'score', negScore, 'name', name, 'region', region, 'total', total, 'higher', higher,
  'lower', lower, 'position', position, 'first_above_higher', firstAboveHigher, 'above', aboveRows, 'below', belowRows }
