--[[
  Takes events off a shard's outbox for good: persisted (the worker, once
  its batch has committed), dead-lettered (the worker), or unreadable (the
  relay). The outbox is where an event is counted as backlog from its write
  until then; the outbox projects hash counts each project's share of it
  (what a plan's backlog share is checked against, see the write script's
  includes/admission.lua). Each event's project is read from its id
  (contracts/events.ts eventIdOf: `<tenant>/<project>/<board>/<period>/<user>#<version>`),
  and its count is lowered by the events actually removed: settling an id
  twice (a job retried after its batch committed) removes and counts
  nothing the second time. Events written before projects were counted
  (ids without a project, or counts that were never raised) take a count to
  0 at most: a count never goes below zero.

  Input:
    KEYS[1]  outbox (hash: event id -> event JSON)
    KEYS[2]  outbox projects (hash: '<tenant>/<project>' -> its events in the outbox)
    KEYS[3]  outbox index (zset), optional: the ids are taken off it too
    ARGV     the event ids

  Answer: { 'ok', 'removed', <events removed from the outbox> }
]]

local removed, byProject = 0, {}
for _, id in ipairs(ARGV) do
  if redis.call('HDEL', KEYS[1], id) == 1 then
    removed = removed + 1
    local scope = string.match(id, '^([^/]+/[^/]+)/[^/]+/[^/]+/')
    if scope then byProject[scope] = (byProject[scope] or 0) + 1 end
  end
  if KEYS[3] then redis.call('ZREM', KEYS[3], id) end
end
for scope, n in pairs(byProject) do
  if redis.call('HINCRBY', KEYS[2], scope, -n) <= 0 then redis.call('HDEL', KEYS[2], scope) end
end
return { 'ok', 'removed', removed }
