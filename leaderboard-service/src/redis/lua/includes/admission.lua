--[[
  The admission of a write (write.lua, the board engine's one write
  script), kept apart as its own include: looked at before anything
  changes, and a write refused by any of them changes nothing and takes no
  token. Each check answers its refusal ({ status, fields... }, see
  includes/contract) or nil.

  The scripts take their arguments by name: ARGV[1] is one JSON object
  (redis/contract.ts `packArgs`), with, for this part,
    deadline_ms    ms since epoch on the shard's clock: a script that only
                   runs after it (the shard stalled while the call waited)
                   changes nothing, because the caller has given up on it
                   and answered that nothing was applied
    fingerprint    idempotency fingerprint ('' = no idempotency key)
    backlog_limit  refuse when this many events wait to be persisted (0 = none)
    project_backlog_limit
                   refuse when this many of them are the write's project's
                   (its plan's share of backlog_limit; 0 = no share of its own)
    buckets        { project = { capacity, window_ms }, user = { ... }, region = { ... } }
                   (capacity 0 = no bucket): the project's (its plan's
                   writes on this shard) first, then the player's, then the
                   region's
]]
--- @include "includes/contract"
--- @include "includes/token-bucket"

-- The write's arguments, by name.
local function packedArgs() return cjson.decode(ARGV[1]) end

-- Refused when the script runs after the caller's deadline.
local function admitDeadline(a, clock)
  local late = clock - a.deadline_ms
  if late > 0 then return { 'expired', 'late_ms', late } end
  return nil
end

-- The stored answer of a write already made with this idempotency key, if any.
local function admitReplay(a, idempotencyKey)
  if a.fingerprint == '' then return nil end
  local record = redis.call('GET', idempotencyKey)
  if record then return { 'replay', 'stored', record } end
  return nil
end

-- Backpressure: events written but not yet persisted (or dead-lettered),
-- wherever they are: outbox, queue, worker.
-- The project's own share is counted in `projectsKey` (field `scope`).
local function admitBacklog(a, outboxKey, projectsKey, scope)
  if a.backlog_limit > 0 then
    local backlog = redis.call('HLEN', outboxKey)
    if backlog >= a.backlog_limit then return { 'queue_full', 'backlog', backlog, 'scope', 'shard' } end
  end
  if a.project_backlog_limit > 0 then
    local mine = tonumber(redis.call('HGET', projectsKey, scope) or '0')
    if mine >= a.project_backlog_limit then return { 'queue_full', 'backlog', mine, 'scope', 'project' } end
  end
  return nil
end

-- Token buckets: looked at here; the function returned takes one token from
-- each, to be called only once the write is applied.
local function admitBuckets(a, projectKey, userKey, regionKey, clock)
  local project, user, region = a.buckets.project, a.buckets.user, a.buckets.region
  local projectTokens, userTokens, regionTokens
  if project.capacity > 0 then
    local rate
    projectTokens, rate = bucketTokens(projectKey, project.capacity, project.window_ms, clock)
    if projectTokens < 1 then return { 'project_rate_limited', 'wait_ms', bucketWait(projectTokens, rate) } end
  end
  if user.capacity > 0 then
    local rate
    userTokens, rate = bucketTokens(userKey, user.capacity, user.window_ms, clock)
    if userTokens < 1 then return { 'rate_limited', 'wait_ms', bucketWait(userTokens, rate) } end
  end
  if region.capacity > 0 then
    local rate
    regionTokens, rate = bucketTokens(regionKey, region.capacity, region.window_ms, clock)
    if regionTokens < 1 then return { 'region_rate_limited', 'wait_ms', bucketWait(regionTokens, rate) } end
  end
  return nil, function()
    if projectTokens then bucketTake(projectKey, projectTokens, clock, project.window_ms) end
    if userTokens then bucketTake(userKey, userTokens, clock, user.window_ms) end
    if regionTokens then bucketTake(regionKey, regionTokens, clock, region.window_ms) end
  end
end
