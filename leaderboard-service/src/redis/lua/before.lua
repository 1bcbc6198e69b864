--[[
  For each key (stored score, member), how many players of one view of a
  board's period on this shard rank ahead of it — those with a
  strictly better score for `shared` ties, those before it in board order
  for `earliest` ties — and how many have a strictly worse score (for the
  percentile). Used to rank a player of one shard on the whole GLOBAL board.

  Input:
    KEYS[1]  the view (zset)
    ARGV[1]  ties: 'shared' | 'earliest'
    ARGV[2..] stored score, member, stored score, member, ...

  Answer (see includes/contract):
    ok  total, ahead = { n1, n2, ... }, worse = { w1, w2, ... }
]]
--- @include "includes/contract"
--- @include "includes/board"

local ahead, worse = {}, {}
for i = 2, #ARGV, 2 do
  if ARGV[1] == 'earliest' then
    ahead[#ahead + 1] = positionOf(KEYS[1], ARGV[i], ARGV[i + 1])
  else
    ahead[#ahead + 1] = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[i])
  end
  worse[#worse + 1] = redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[i], '+inf')
end
return { 'ok', 'total', redis.call('ZCARD', KEYS[1]), 'ahead', ahead, 'worse', worse }
