--[[
  The one write script of the board engine: applies one score submission
  to a board's period (`main` included), atomically, on the player's home
  shard: the deadline, the idempotency record, the board's bounds, the
  backlog and both token buckets are checked first (a refusal changes
  nothing and takes no token), then the operator decides the new score. A
  `best` submission that does not improve changes nothing and emits no
  event (it still takes a token: it was accepted). `insert` (set if absent:
  registration's entry, the original /score/create) answers the current
  entry of a player who has one before any check, changing nothing.

  Input:
    KEYS[1]  GLOBAL view of the board's period on this shard (zset, see includes/board)
    KEYS[2]  versions hash        (user_id -> version of the entry)
    KEYS[3]  members hash         (user_id -> member; earliest boards)
    KEYS[4]  metadata hash        (user_id -> metadata JSON)
    KEYS[5]  names hash           (user_id -> name, the project's)
    KEYS[6]  idempotency key      (only used with a fingerprint)
    KEYS[7]  outbox hash          (shard-wide, see write.lua)
    KEYS[8]  outbox index zset
    KEYS[9]  the player's token bucket (the project's)
    KEYS[10] the region's token bucket (shard-wide: every project's writes)
    KEYS[11] the period's closed flag (set by the close: from then on the period takes no write)
    KEYS[12] the project's token bucket (its writes on this shard)
    KEYS[13] outbox projects hash (shard-wide: '<tenant>/<project>' -> its events in the outbox)
    KEYS[14] regions hash         (user_id -> home region, the project's)
    KEYS[15] usage: the tenant's hour counters (hash '<project>|<kind>' -> count, see includes/usage)
    KEYS[16] usage: the hour's tenants (set)
    KEYS[17] usage: the shard's hours index (zset)
    KEYS[18] quota: this shard's allowance of the tenant's month (string; only looked at with quota = 1)
    KEYS[19] regional view        (absent for GLOBAL-only players)

    ARGV[1]  the arguments by name, one JSON object (see includes/admission for
             deadline_ms, fingerprint, backlog_limit, project_backlog_limit and buckets):
      operator             'set' | 'incr' | 'best' | 'insert'
      value                the score (set, best, insert) or the delta (incr)
      op                   the event's op (the operator, or the original API's
                           create | update | add | register for `main`)
      user_id, name        the player
      region               home region ('GLOBAL' for GLOBAL-only)
      now                  ms since epoch, as text (the event's ts)
      order, tie_break     'desc' | 'asc', 'shared' | 'earliest'
      min_score, max_score the board's bounds
      metadata             metadata JSON text ('' = none given: the entry keeps what it has)
      idempotency_ttl_s
      request_id
      tenant, project      the project the write belongs to (put in the event and its id)
      board, period        the board's and the period's ids
      top_depth            top-cache depth (0 = publish nothing)
      top_channel          channel for top changes
      top_prefix           '<tenant>/<project>/<board>/<period>/': what its messages
                           start with (then the view)
      traceparent          the request's W3C traceparent, put in the event ('' = not traced)
      usage_hour, usage_hour_ms, usage_ttl_s
                           the hour an accepted write is counted in (contracts/usage.ts), and
                           how long its counters are kept
      quota                1: the tenant has a monthly quota, and an accepted write takes one
                           from this shard's allowance (none left: `quota_lease`, nothing changed)

  Answers (see includes/contract):
    ok                   score, version, changed (0|1), previous ('' when new), regional (-1: none;
                         the regional rank), before (players ahead on this shard's GLOBAL view:
                         strictly better for shared ties, ahead in board order for earliest),
                         member, stored, event_id, event ('' when nothing changed), published
    replay               stored
    expired              late_ms
    out_of_range         current ('' when none), attempted
    queue_full           backlog, scope ('shard' | 'project': whose limit it reached)
    project_rate_limited wait_ms
    rate_limited         wait_ms
    region_rate_limited  wait_ms
    period_closed        (the period was closed: its standings are archived)
    quota_lease          (this shard's allowance of the tenant's quota is used up: ask the
                         tenant's shard for more, includes/usage and quota.lua, and try again)
]]
--- @include "includes/contract"
--- @include "includes/admission"
--- @include "includes/board"
--- @include "includes/usage"

local a = packedArgs()
local op, value, uid, name, region = a.operator, a.value, a.user_id, a.name, a.region
local order, tie = a.order, a.tie_break
local minScore, maxScore = a.min_score, a.max_score
local metadata, fingerprint = a.metadata, a.fingerprint
local board, period = a.board, a.period
local global = KEYS[1]
local hasRegion = #KEYS >= 19
local regional = KEYS[19]
local scope = a.tenant .. '/' .. a.project

local clock = nowMs()
local refused = admitDeadline(a, clock) or admitReplay(a, KEYS[6])
if refused then return refused end
if redis.call('EXISTS', KEYS[11]) == 1 then return { 'period_closed' } end

local member = uid
if tie == 'earliest' then member = redis.call('HGET', KEYS[3], uid) or false end
local current = false
if member then current = redis.call('ZSCORE', global, member) end
local exists = current ~= false
local score = exists and scoreOf(order, current) or nil

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
local function unchanged(version)
  return { 'ok', 'score', int(score), 'version', version, 'changed', 0, 'previous', int(score),
    'regional', regionalRank(current, member), 'before', before(current, member), 'member', member, 'stored', current,
    'event_id', '', 'event', '', 'published', 0 }
end

if op == 'insert' and exists then
  -- Set if absent: the entry stays as it is, nothing is checked or taken.
  return unchanged(tonumber(redis.call('HGET', KEYS[2], uid) or '0'))
end

local newScore
if op == 'set' or op == 'best' or op == 'insert' then
  newScore = value
elseif op == 'incr' then
  newScore = (score or 0) + value
else
  return redis.error_reply('ERR unknown operator ' .. tostring(op))
end
if newScore < minScore or newScore > maxScore then
  return { 'out_of_range', 'current', score and int(score) or '', 'attempted', int(newScore) }
end

refused = admitBacklog(a, KEYS[7], KEYS[13], scope)
if refused then return refused end
local takeTokens
refused, takeTokens = admitBuckets(a, KEYS[12], KEYS[9], KEYS[10], clock)
if refused then return refused end
if a.quota == 1 then
  if (tonumber(redis.call('GET', KEYS[18]) or '0')) < 1 then return { 'quota_lease' } end
  redis.call('DECR', KEYS[18])
end
takeTokens()
-- Accepted: metered (improving or not), in the same step.
countUsage(KEYS[15], KEYS[16], KEYS[17], a.project .. '|write', 1, a.tenant, a.usage_hour, a.usage_hour_ms, a.usage_ttl_s)

local version = tonumber(redis.call('HGET', KEYS[2], uid) or '0')
local improves = not exists
if exists then
  if op == 'best' then
    if order == 'desc' then improves = newScore > score else improves = newScore < score end
  else
    improves = true
  end
end
if not improves then return unchanged(version) end

-- The board's first `depth` entries change if the player was or will be among them.
local depth = a.top_depth
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
redis.call('HSET', KEYS[14], uid, region)
if metadata ~= '' then redis.call('HSET', KEYS[4], uid, metadata) end

local eventId = outboxId(a.tenant, a.project, board, period, uid, version)
local delta = newScore - (score or 0)
local event = string.sub(eventJson(a.tenant, a.project, uid, name, region, a.op, delta, newScore, version, a.now, a.request_id, a.traceparent or ''), 1, -2) ..
  ',"board":' .. cjson.encode(board) .. ',"period":' .. cjson.encode(period) .. ',"member":' .. cjson.encode(newMember) ..
  (metadata ~= '' and (',"metadata":' .. metadata) or '') .. '}'
if redis.call('HSET', KEYS[7], eventId, event) == 1 then redis.call('HINCRBY', KEYS[13], scope, 1) end
redis.call('ZADD', KEYS[8], a.now, eventId)

local ahead = before(newStored, newMember)
local regionalNow = regionalRank(newStored, newMember)
local published = 0
if depth > 0 then
  if globalWasTop or ahead < depth then
    redis.call('PUBLISH', a.top_channel, a.top_prefix .. 'GLOBAL')
    published = 1
  end
  if hasRegion and (regionalWasTop or regionalNow - 1 < depth) then
    redis.call('PUBLISH', a.top_channel, a.top_prefix .. region)
    published = 1
  end
end
if fingerprint ~= '' then
  local core = '{"fingerprint":' .. cjson.encode(fingerprint) .. ',"score":' .. int(newScore) ..
    ',"version":' .. version .. ',"regional":' .. regionalNow .. ',"before":' .. ahead ..
    ',"member":' .. cjson.encode(newMember) .. ',"stored":' .. cjson.encode(newStored) .. '}'
  redis.call('SET', KEYS[6], core, 'EX', a.idempotency_ttl_s)
end
return { 'ok', 'score', int(newScore), 'version', version, 'changed', 1, 'previous', score and int(score) or '',
  'regional', regionalNow, 'before', ahead, 'member', newMember, 'stored', newStored,
  'event_id', eventId, 'event', event, 'published', published }
