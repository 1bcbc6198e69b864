--[[
  The rows of one view of a board's period on this shard just above
  and just below a key (stored score, member) in board order: around-me for
  a player of this shard (the key is theirs; they are left out of the rows)
  or of another one (GLOBAL: every shard contributes its neighbours).

  Input:
    KEYS[1]  the view (zset)      KEYS[2] names hash      KEYS[3] metadata hash
    ARGV[1]  ties: 'shared' | 'earliest'
    ARGV[2]  stored score         ARGV[3] member           ARGV[4] range (rows each side)

  Answer (see includes/contract):
    ok  position (members before the key here), before (players ahead of the key, by the ties),
        above, below = rows { member, stored, name, metadata, ... },
        first_above_before (players ahead, by the ties, of the first row above; 0 when none)
]]
--- @include "includes/contract"
--- @include "includes/board"

local z, tie, s, member, range = KEYS[1], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local position = positionOf(z, s, member)
local before = position
if tie ~= 'earliest' then before = redis.call('ZCOUNT', z, '-inf', '(' .. s) end

local above, firstAboveBefore = {}, 0
if position > 0 and range > 0 then
  local from = math.max(0, position - range)
  local page = redis.call('ZRANGE', z, from, position - 1, 'WITHSCORES')
  if tie == 'earliest' then firstAboveBefore = from
  else firstAboveBefore = redis.call('ZCOUNT', z, '-inf', '(' .. page[2]) end
  above = rowsOf(page, KEYS[2], KEYS[3])
end
local start = position
if redis.call('ZRANGE', z, position, position)[1] == member then start = position + 1 end
local below = {}
if range > 0 then below = rowsOf(redis.call('ZRANGE', z, start, start + range - 1, 'WITHSCORES'), KEYS[2], KEYS[3]) end
return { 'ok', 'position', position, 'before', before, 'above', above, 'below', below, 'first_above_before', firstAboveBefore }
