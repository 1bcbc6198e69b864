--[[
  A page of one view of a board's period on this shard: up to `limit`
  entries in board order, from the start or strictly after a cursor key.

  Input:
    KEYS[1]  the view (zset)      KEYS[2] names hash      KEYS[3] metadata hash
    ARGV[1]  limit (>= 1)
    ARGV[2]  cursor stored score ('' = from the start)   ARGV[3] cursor member

  Answer (see includes/contract):
    ok  total, start (players at or before the cursor here: before the first row),
        before_cursor (players here with a strictly better score than the cursor's; 0 without one),
        rows = { member, stored, name, metadata ('' none), ... }
]]
--- @include "includes/contract"
--- @include "includes/board"

local z = KEYS[1]
local limit = tonumber(ARGV[1])
local start, beforeCursor = 0, 0
if ARGV[2] ~= '' then
  beforeCursor = redis.call('ZCOUNT', z, '-inf', '(' .. ARGV[2])
  start = positionOf(z, ARGV[2], ARGV[3])
  local at = redis.call('ZRANGE', z, start, start)[1]
  if at == ARGV[3] then start = start + 1 end
end
local page = redis.call('ZRANGE', z, start, start + limit - 1, 'WITHSCORES')
local rows = rowsOf(page, KEYS[2], KEYS[3])
return { 'ok', 'total', redis.call('ZCARD', z), 'start', start, 'before_cursor', beforeCursor, 'rows', rows }
