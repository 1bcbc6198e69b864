--[[
  The first N rows of one board on this shard, with names, and the board size.

  Input:
    KEYS[1]  board (sorted set of negated scores)
    KEYS[2]  names hash (user_id -> name)
    ARGV[1]  limit (>= 1)

  Output: { total, uid1, negScore1, name1, uid2, negScore2, name2, ... }
]]
local rows = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local out = { redis.call('ZCARD', KEYS[1]) }
if #rows == 0 then return out end
local ids = {}
for i = 1, #rows, 2 do ids[#ids + 1] = rows[i] end
local names = redis.call('HMGET', KEYS[2], unpack(ids))
for i = 1, #ids do
  out[#out + 1] = ids[i]
  out[#out + 1] = rows[2 * i]
  out[#out + 1] = names[i] or ''
end
return out
