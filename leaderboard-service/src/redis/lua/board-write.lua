--[[
  Applies one score submission to a named board's period, atomically, on
  the player's home shard: the deadline, the idempotency record, the
  board's bounds, the backlog and both token buckets are checked first (a
  refusal changes nothing and takes no token), then the operator decides
  the new score. A `best` submission that does not improve changes nothing
  and emits no event (it still takes a token: it was accepted).

  Input:
    KEYS[1]  GLOBAL view of the board's period on this shard (zset, see includes/board)
    KEYS[2]  versions hash        (user_id -> version of the entry)
    KEYS[3]  members hash         (user_id -> member; earliest boards)
    KEYS[4]  metadata hash        (user_id -> metadata JSON)
    KEYS[5]  names hash           (user_id -> name, shard-wide)
    KEYS[6]  idempotency key      (only used when ARGV[12] ~= '')
    KEYS[7]  outbox hash          (shard-wide, see write.lua)
    KEYS[8]  outbox index zset
    KEYS[9]  the player's token bucket
    KEYS[10] the region's token bucket
    KEYS[11] the period's closed flag (set by the close: from then on the period takes no write)
    KEYS[12] regional view        (absent for GLOBAL-only players)

    ARGV[1]  operator: 'set' | 'incr' | 'best'
    ARGV[2]  value: the score (set, best) or the delta (incr)
    ARGV[3]  user id              ARGV[4]  name          ARGV[5] home region ('GLOBAL' for GLOBAL-only)
    ARGV[6]  now, ms since epoch (the event's ts)
    ARGV[7]  order: 'desc' | 'asc'                        ARGV[8] ties: 'shared' | 'earliest'
    ARGV[9]  min score            ARGV[10] max score
    ARGV[11] metadata JSON ('' = none given: the entry keeps what it has)
    ARGV[12] idempotency fingerprint ('' = none)          ARGV[13] its TTL, seconds
    ARGV[14] request id
    ARGV[15] backlog limit in events (0 = none)
    ARGV[16] deadline, ms since epoch on the shard's clock (see write.lua)
    ARGV[17] player bucket capacity (0 = none)            ARGV[18] its window, ms
    ARGV[19] region bucket capacity (0 = none)            ARGV[20] its window, ms
    ARGV[21] board id             ARGV[22] period id
    ARGV[23] top-cache depth (0 = publish nothing)        ARGV[24] channel for top changes
    ARGV[25] the request's W3C traceparent, put in the event ('' = not traced; may be absent)

  Answers (see includes/contract):
    ok                   score, version, changed (0|1), previous ('' when new), regional (-1: none;
                         the regional rank), before (players ahead on this shard's GLOBAL view:
                         strictly better for shared ties, ahead in board order for earliest),
                         member, stored, event_id, event ('' when nothing changed), published
    replay               stored
    expired              late_ms
    out_of_range         current ('' when none), attempted
    queue_full           backlog
    rate_limited         wait_ms
    region_rate_limited  wait_ms
    period_closed        (the period was closed: its standings are archived)
]]
--- @include "includes/contract"
--- @include "includes/token-bucket"
--- @include "includes/board"

local op, value, uid, name, region = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local order, tie = ARGV[7], ARGV[8]
local minScore, maxScore = tonumber(ARGV[9]), tonumber(ARGV[10])
local metadata, fingerprint = ARGV[11], ARGV[12]
local board, period = ARGV[21], ARGV[22]
local global = KEYS[1]
local hasRegion = #KEYS >= 12
local regional = KEYS[12]

local clock = nowMs()
local late = clock - tonumber(ARGV[16])
if late > 0 then return { 'expired', 'late_ms', late } end

if fingerprint ~= '' then
  local record = redis.call('GET', KEYS[6])
  if record then return { 'replay', 'stored', record } end
end
if redis.call('EXISTS', KEYS[11]) == 1 then return { 'period_closed' } end

local member = uid
if tie == 'earliest' then member = redis.call('HGET', KEYS[3], uid) or false end
local current = false
if member then current = redis.call('ZSCORE', global, member) end
local exists = current ~= false
local score = exists and scoreOf(order, current) or nil

local newScore
if op == 'set' or op == 'best' then
  newScore = value
elseif op == 'incr' then
  newScore = (score or 0) + value
else
  return redis.error_reply('ERR unknown operator ' .. tostring(op))
end
if newScore < minScore or newScore > maxScore then
  return { 'out_of_range', 'current', score and int(score) or '', 'attempted', int(newScore) }
end

local limit = tonumber(ARGV[15])
if limit > 0 then
  local backlog = redis.call('HLEN', KEYS[7])
  if backlog >= limit then return { 'queue_full', 'backlog', backlog } end
end

local userCap, userWindow = tonumber(ARGV[17]), tonumber(ARGV[18])
local regionCap, regionWindow = tonumber(ARGV[19]), tonumber(ARGV[20])
local userTokens, regionTokens
if userCap > 0 then
  local rate
  userTokens, rate = bucketTokens(KEYS[9], userCap, userWindow, clock)
  if userTokens < 1 then return { 'rate_limited', 'wait_ms', bucketWait(userTokens, rate) } end
end
if regionCap > 0 then
  local rate
  regionTokens, rate = bucketTokens(KEYS[10], regionCap, regionWindow, clock)
  if regionTokens < 1 then return { 'region_rate_limited', 'wait_ms', bucketWait(regionTokens, rate) } end
end
if userTokens then bucketTake(KEYS[9], userTokens, clock, userWindow) end
if regionTokens then bucketTake(KEYS[10], regionTokens, clock, regionWindow) end

-- Players ahead of a key on this shard's GLOBAL view, by the board's ties.
local function before(s, m)
  if tie == 'earliest' then return positionOf(global, s, m) end
  return redis.call('ZCOUNT', global, '-inf', '(' .. s)
end
local function regionalRank(s, m)
  if not hasRegion then return -1 end
  if tie == 'earliest' then return positionOf(regional, s, m) + 1 end
  return redis.call('ZCOUNT', regional, '-inf', '(' .. s) + 1
end

local version = tonumber(redis.call('HGET', KEYS[2], uid) or '0')
local improves = not exists
if exists then
  if op == 'best' then
    if order == 'desc' then improves = newScore > score else improves = newScore < score end
  else
    improves = true
  end
end
if not improves then
  local s = current
  return { 'ok', 'score', int(score), 'version', version, 'changed', 0, 'previous', int(score),
    'regional', regionalRank(s, member), 'before', before(s, member), 'member', member, 'stored', s,
    'event_id', '', 'event', '', 'published', 0 }
end

-- The board's first `depth` entries change if the player was or will be among them.
local depth = tonumber(ARGV[23])
local function wasTop(z)
  if depth <= 0 then return false end
  if not exists then return true end
  local r = redis.call('ZRANK', z, member)
  return r == false or r < depth
end
local globalWasTop = wasTop(global)
local regionalWasTop = hasRegion and wasTop(regional)

local newStored = storedFor(order, newScore)
local newMember = uid
if tie == 'earliest' then
  if exists and newScore == score then
    newMember = member -- the same score, reached when it first was
  else
    local t = redis.call('TIME')
    newMember = string.format('%010d%06d|', tonumber(t[1]), tonumber(t[2])) .. uid
  end
  if exists and newMember ~= member then
    redis.call('ZREM', global, member)
    if hasRegion then redis.call('ZREM', regional, member) end
  end
  redis.call('HSET', KEYS[3], uid, newMember)
end
redis.call('ZADD', global, newStored, newMember)
if hasRegion then redis.call('ZADD', regional, newStored, newMember) end
version = version + 1
redis.call('HSET', KEYS[2], uid, version)
redis.call('HSET', KEYS[5], uid, name)
if metadata ~= '' then redis.call('HSET', KEYS[4], uid, metadata) end

local eventId = board .. '/' .. period .. '/' .. outboxId(uid, version)
local delta = newScore - (score or 0)
local event = string.sub(eventJson(uid, name, region, op, delta, newScore, version, ARGV[6], ARGV[14], ARGV[25] or ''), 1, -2) ..
  ',"board":' .. cjson.encode(board) .. ',"period":' .. cjson.encode(period) .. ',"member":' .. cjson.encode(newMember) ..
  (metadata ~= '' and (',"metadata":' .. metadata) or '') .. '}'
redis.call('HSET', KEYS[7], eventId, event)
redis.call('ZADD', KEYS[8], ARGV[6], eventId)

local ahead = before(newStored, newMember)
local regionalNow = regionalRank(newStored, newMember)
local published = 0
if depth > 0 then
  if globalWasTop or ahead < depth then
    redis.call('PUBLISH', ARGV[24], board .. '/' .. period .. '/GLOBAL')
    published = 1
  end
  if hasRegion and (regionalWasTop or regionalNow - 1 < depth) then
    redis.call('PUBLISH', ARGV[24], board .. '/' .. period .. '/' .. region)
    published = 1
  end
end
if fingerprint ~= '' then
  local core = '{"fingerprint":' .. cjson.encode(fingerprint) .. ',"score":' .. int(newScore) ..
    ',"version":' .. version .. ',"regional":' .. regionalNow .. ',"before":' .. ahead ..
    ',"member":' .. cjson.encode(newMember) .. ',"stored":' .. cjson.encode(newStored) .. '}'
  redis.call('SET', KEYS[6], core, 'EX', tonumber(ARGV[13]))
end
return { 'ok', 'score', int(newScore), 'version', version, 'changed', 1, 'previous', score and int(score) or '',
  'regional', regionalNow, 'before', ahead, 'member', newMember, 'stored', newStored,
  'event_id', eventId, 'event', event, 'published', published }
