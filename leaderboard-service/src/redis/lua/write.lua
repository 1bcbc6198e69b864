--[[
  Applies one score write of one player, atomically, on the player's home
  shard: the deadline, the idempotency record, the score range, the backlog
  and both token buckets are checked first, and a write refused for any of
  them changes nothing (no token is taken either). An applied write updates
  the boards, the user hash and the names, takes one token from each bucket,
  puts its event in the outbox, and publishes a top-page change if any.

  Input:
    KEYS[1]  user hash            (user_id, name, region, score, version, updated_at)
    KEYS[2]  GLOBAL board partition of this shard
    KEYS[3]  names hash           (user_id -> name, for reads)
    KEYS[4]  idempotency key      (only used with a fingerprint)
    KEYS[5]  outbox hash          (event id -> event JSON) of every event not yet
                                  persisted: the relay leaves entries here, the
                                  worker deletes them after their COMMIT, so its
                                  size is the shard's backlog, in events
    KEYS[6]  outbox index zset    (event id scored by time written) of the events
                                  not yet on the queue, for the relay's sweeper
    KEYS[7]  the player's token bucket (hash)
    KEYS[8]  the region's token bucket (hash)
    KEYS[9]  regional board       (absent for GLOBAL-only players)

    ARGV[1]  the arguments by name, one JSON object (see includes/admission for
             deadline_ms, fingerprint, backlog_limit and buckets):
      op             'create' | 'update' | 'add' | 'register'
      value          initial score (create/register), new score (update), delta (add)
      user_id, name  the player
      region         home region ('GLOBAL' for GLOBAL-only players)
      now            ms since epoch, as text (the event's ts and updated_at)
      max_score
      idempotency_ttl_s
      request_id
      top_depth      a change within the first this-many entries of a board, or
                     a new entry on it, is published (0 = publish nothing)
      top_channel    channel the changed board's name is published on (the
                     readers' top-page caches, see top-cache.ts)
      traceparent    the request's W3C traceparent, put in the event ('' = not traced)

  Answers (see includes/contract; statuses are named in redis/contract.ts):
    ok                   score, version, regional (-1: none), higher (players above
                         on this shard's GLOBAL partition), changed (0|1), previous,
                         event_id, event ('' when nothing changed), published (0|1:
                         a top change was announced)
    replay               stored (the idempotency record)
    expired              late_ms
    out_of_range         current, attempted
    queue_full           backlog
    rate_limited         wait_ms (the player's bucket is empty)
    region_rate_limited  wait_ms (the region's bucket is empty)
]]
--- @include "includes/contract"
--- @include "includes/order"
--- @include "includes/admission"

local a = packedArgs()
local op = a.op
local value = a.value
local uid = a.user_id
local now = a.now
local maxScore = a.max_score
local fingerprint = a.fingerprint

local clock = nowMs()
local refused = admitDeadline(a, clock) or admitReplay(a, KEYS[4])
if refused then return refused end

local cur = redis.call('HMGET', KEYS[1], 'score', 'version')
local exists = cur[2] ~= false
local score = exists and tonumber(cur[1]) or 0
local version = exists and tonumber(cur[2]) or 0
local hasRegion = #KEYS >= 9
local regionalBoard = KEYS[9]

local function ranks(s)
  local regional = -1
  if hasRegion then regional = redis.call('ZCOUNT', regionalBoard, '-inf', '(' .. stored(s)) + 1 end
  local higher = redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. stored(s))
  return regional, higher
end

local newScore
if (op == 'create' or op == 'register') and exists then
  -- Creating an existing entry is a no-op that answers the current card.
  local regional, higher = ranks(score)
  return { 'ok', 'score', int(score), 'version', version, 'regional', regional, 'higher', higher,
    'changed', 0, 'previous', int(score), 'event_id', '', 'event', '', 'published', 0 }
elseif op == 'create' or op == 'register' or op == 'update' then
  newScore = value
elseif op == 'add' then
  newScore = score + value
else
  return redis.error_reply('ERR unknown op ' .. tostring(op))
end

if newScore < 0 or newScore > maxScore then
  return { 'out_of_range', 'current', int(score), 'attempted', int(newScore) }
end

refused = admitBacklog(a, KEYS[5])
if refused then return refused end
local takeTokens
refused, takeTokens = admitBuckets(a, KEYS[7], KEYS[8], clock)
if refused then return refused end

-- Was the player among this shard's first `depth` entries of a board before
-- the write? A new player changes the board's size, which top pages carry.
local depth = a.top_depth
local function wasTop(board)
  if depth <= 0 then return false end
  if not exists then return true end
  local r = redis.call('ZRANK', board, uid)
  return r == false or r < depth
end
local globalWasTop = wasTop(KEYS[2])
local regionalWasTop = hasRegion and wasTop(regionalBoard)

takeTokens()

version = version + 1
local name = a.name
local region = a.region
redis.call('HSET', KEYS[1], 'user_id', uid, 'name', name, 'region', region,
  'score', int(newScore), 'version', version, 'updated_at', now)
redis.call('ZADD', KEYS[2], stored(newScore), uid)
redis.call('HSET', KEYS[3], uid, name)
if hasRegion then redis.call('ZADD', regionalBoard, stored(newScore), uid) end

-- The event goes to the outbox in the same atomic step, so an acknowledged
-- write can never lose its event: the relay enqueues it and then drops it
-- from the index, the sweeper re-enqueues whatever a crash left in the index,
-- and the worker deletes it from the outbox once it is in Postgres.
local eventId = outboxId(uid, version)
local event = eventJson(uid, name, region, op, newScore - score, newScore, version, now, a.request_id, a.traceparent or '')
redis.call('HSET', KEYS[5], eventId, event)
redis.call('ZADD', KEYS[6], now, eventId)

local regional, higher = ranks(newScore)
-- The first `depth` entries changed if the player was or now is among them
-- (`higher`, `regional` - 1 are lower bounds of the new position: ties may
-- publish a change that was not one, which only costs a cache refill).
local published = 0
if depth > 0 then
  if globalWasTop or higher < depth then
    redis.call('PUBLISH', a.top_channel, 'GLOBAL')
    published = 1
  end
  if hasRegion and (regionalWasTop or regional - 1 < depth) then
    redis.call('PUBLISH', a.top_channel, region)
    published = 1
  end
end
if fingerprint ~= '' then
  -- The caller replaces this core record with the full response (SET XX KEEPTTL).
  local core = '{"fingerprint":' .. cjson.encode(fingerprint) .. ',"score":' .. int(newScore) ..
    ',"version":' .. version .. ',"regional":' .. regional .. ',"higher":' .. higher .. '}'
  redis.call('SET', KEYS[4], core, 'EX', a.idempotency_ttl_s)
end
return { 'ok', 'score', int(newScore), 'version', version, 'regional', regional, 'higher', higher,
  'changed', 1, 'previous', int(score), 'event_id', eventId, 'event', event, 'published', published }
