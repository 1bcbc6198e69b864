--[[
  The first N rows of one board on this shard, with names, and the board size.

  Input:
    KEYS[1]  board (sorted set of negated scores)
    KEYS[2]  names hash (user_id -> name)
    ARGV[1]  limit (>= 1)

  Answer (see includes/contract):
    ok  total, rows = { uid1, storedScore1, name1, uid2, storedScore2, name2, ... }
]]
local rows = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local out = {}
if #rows > 0 then
  local ids = {}
  for i = 1, #rows, 2 do ids[#ids + 1] = rows[i] end
  local names = redis.call('HMGET', KEYS[2], unpack(ids))
  for i = 1, #ids do
    out[#out + 1] = ids[i]
    out[#out + 1] = rows[2 * i]
    out[#out + 1] = names[i] or ''
  end
end
return { 'ok', 'total', redis.call('ZCARD', KEYS[1]), 'rows', out }
