--[[
  Finds players on one view of a board's period on this shard.

  Input:
    KEYS[1]  the view (zset)      KEYS[2] names hash      KEYS[3] metadata hash
    KEYS[4]  members hash (user_id -> member; earliest boards)
    KEYS[5]  regions hash (user_id -> home region, the project's)
    ARGV[1]  ties: 'shared' | 'earliest'
    ARGV[2..] user ids

  Answer (see includes/contract):
    ok  total, found = { uid, member, stored, name, metadata, ahead, worse, region, ... } for each id on
        this view (ahead: players ahead of it here, by the ties; worse: strictly worse scores here)
]]
--- @include "includes/contract"
--- @include "includes/board"

local z, tie = KEYS[1], ARGV[1]
local found = {}
for i = 2, #ARGV do
  local uid = ARGV[i]
  local member = uid
  if tie == 'earliest' then member = redis.call('HGET', KEYS[4], uid) end
  local s = member and redis.call('ZSCORE', z, member)
  if s then
    local before
    if tie == 'earliest' then before = redis.call('ZRANK', z, member)
    else before = redis.call('ZCOUNT', z, '-inf', '(' .. s) end
    found[#found + 1] = uid
    found[#found + 1] = member
    found[#found + 1] = s
    found[#found + 1] = redis.call('HGET', KEYS[2], uid) or ''
    found[#found + 1] = redis.call('HGET', KEYS[3], uid) or ''
    found[#found + 1] = before
    found[#found + 1] = redis.call('ZCOUNT', z, '(' .. s, '+inf')
    found[#found + 1] = redis.call('HGET', KEYS[5], uid) or ''
  end
end
return { 'ok', 'total', redis.call('ZCARD', z), 'found', found }
