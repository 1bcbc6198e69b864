--[[
  Restores one entry of a board's period from the durable copy
  (Postgres) after Redis data loss, unless Redis has the same or a newer
  version of it (a rebuild running beside live writes never moves an entry
  backwards).

  Input:
    KEYS[1]  GLOBAL view of the period on this shard    KEYS[2] versions hash
    KEYS[3]  members hash         KEYS[4] metadata hash        KEYS[5] names hash
    KEYS[6]  regions hash (user_id -> home region)
    KEYS[7]  regional view        (absent for GLOBAL-only players)
    ARGV[1]  user id              ARGV[2] name
    ARGV[3]  stored score         ARGV[4] member               ARGV[5] version
    ARGV[6]  metadata JSON ('' = none)
    ARGV[7]  channel for top changes
    ARGV[8]  '<tenant>/<project>/<board>/<period>/' (its messages' prefix)
    ARGV[9]  the player's region ('GLOBAL' for GLOBAL-only)

  Answers (see includes/contract):
    restored  version
    skipped   version (Redis already had this version or a newer one)
]]
--- @include "includes/contract"

local uid = ARGV[1]
local current = tonumber(redis.call('HGET', KEYS[2], uid) or '0')
if current >= tonumber(ARGV[5]) then return { 'skipped', 'version', current } end
local old = redis.call('HGET', KEYS[3], uid) or uid
redis.call('ZREM', KEYS[1], old)
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
if #KEYS >= 7 then
  redis.call('ZREM', KEYS[7], old)
  redis.call('ZADD', KEYS[7], ARGV[3], ARGV[4])
end
if ARGV[4] ~= uid then redis.call('HSET', KEYS[3], uid, ARGV[4]) end
redis.call('HSET', KEYS[2], uid, ARGV[5])
redis.call('HSET', KEYS[5], uid, ARGV[2])
redis.call('HSET', KEYS[6], uid, ARGV[9])
if ARGV[6] ~= '' then redis.call('HSET', KEYS[4], uid, ARGV[6]) end
redis.call('PUBLISH', ARGV[7], ARGV[8] .. 'GLOBAL')
if #KEYS >= 7 then redis.call('PUBLISH', ARGV[7], ARGV[8] .. ARGV[9]) end
return { 'restored', 'version', tonumber(ARGV[5]) }
