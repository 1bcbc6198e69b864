--[[
  The Lua side of the scripts' contract, included by every script that needs
  it (`--- @include "includes/contract"`). The TypeScript side is
  leaderboard-service/src/redis/contract.ts and @lb/common's events.ts: the
  names here and there must agree (test/redis-contract.test.ts runs them).

  - Board order (stored scores, members, places) is includes/order.
  - An outbox entry (and its first queue job) is named
    `tenant/project/board/period/user_id#version` (events.ts `eventIdOf`).
  - An event carries tenant, project, user_id, name, region, op, delta,
    score, version, ts, request_id, and traceparent when the write was
    traced (sampled).
  - A script answers { status, name1, value1, name2, value2, ... }: a status
    word, then named fields, which the caller decodes by name.
]]

-- %.0f prints every integer up to 2^53 exactly (tostring would use %.14g).
local function int(n) return string.format('%.0f', n) end

local function outboxId(tenant, project, board, period, uid, version)
  return tenant .. '/' .. project .. '/' .. board .. '/' .. period .. '/' .. uid .. '#' .. version
end

-- The event of one applied write, as JSON (fields in a fixed order).
-- `traceparent` is the writing request's W3C trace context ('' = not traced: no field).
local function eventJson(tenant, project, uid, name, region, op, delta, score, version, ts, requestId, traceparent)
  return '{"tenant":' .. cjson.encode(tenant) .. ',"project":' .. cjson.encode(project) ..
    ',"user_id":' .. cjson.encode(uid) .. ',"name":' .. cjson.encode(name) ..
    ',"region":' .. cjson.encode(region) .. ',"op":' .. cjson.encode(op) ..
    ',"delta":' .. int(delta) .. ',"score":' .. int(score) ..
    ',"version":' .. version .. ',"ts":' .. ts .. ',"request_id":' .. cjson.encode(requestId) ..
    (traceparent ~= '' and (',"traceparent":' .. cjson.encode(traceparent)) or '') .. '}'
end

-- The shard's clock, ms since epoch.
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
