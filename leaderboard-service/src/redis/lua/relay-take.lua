--[[
  The shard's outbox relay: the next envelope of events to enqueue, for the
  one replica that holds the shard's relay lease (any replica may take it
  once it expires). Called every RELAY_LINGER_MS by every replica's relay of
  the shard; only the holder gets events, so a shard has one envelope per
  linger however many replicas write to it.

  Input:
    KEYS[1]  relay lease (string: the holder's id; expires)
    KEYS[2]  outbox index (zset: event id -> time written; events not enqueued yet)
    KEYS[3]  outbox (hash: event id -> event JSON; events not persisted yet)
    ARGV[1]  this relay's id
    ARGV[2]  lease, ms: held for this long from now (0 = give it up; nothing is taken)
    ARGV[3]  most events to take

  Answer (see includes/contract):
    ok        ids, events   the oldest events of the index, at most ARGV[3] (entries
                            whose event is no longer in the outbox are dropped from it)
    busy      ttl_ms        another relay holds the lease, for at most that long
    released                the lease is given up (if this relay held it)
]]

local me, leaseMs, most = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

local holder = redis.call('GET', KEYS[1])
if leaseMs == 0 then
  if holder == me then redis.call('DEL', KEYS[1]) end
  return { 'released' }
end
if holder and holder ~= me then
  return { 'busy', 'ttl_ms', redis.call('PTTL', KEYS[1]) }
end
redis.call('SET', KEYS[1], me, 'PX', leaseMs)

local ids = redis.call('ZRANGE', KEYS[2], 0, most - 1)
local taken, events, gone = {}, {}, {}
if #ids > 0 then
  local jsons = redis.call('HMGET', KEYS[3], unpack(ids))
  for i, id in ipairs(ids) do
    if jsons[i] then
      taken[#taken + 1] = id
      events[#events + 1] = jsons[i]
    else
      gone[#gone + 1] = id
    end
  end
  if #gone > 0 then redis.call('ZREM', KEYS[2], unpack(gone)) end
end
return { 'ok', 'ids', taken, 'events', events }
