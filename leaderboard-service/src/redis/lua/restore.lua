--[[
  Restores one player from the durable copy (Postgres) after Redis data loss.
  Applies only when Redis has no newer version of the player, so a rebuild
  running beside live writes never moves a player backwards.

  Input:
    KEYS[1]  user hash
    KEYS[2]  GLOBAL board partition of this shard
    KEYS[3]  names hash
    KEYS[4]  regional board (absent for GLOBAL-only players)
    ARGV[1]  user id
    ARGV[2]  name
    ARGV[3]  home region
    ARGV[4]  score
    ARGV[5]  version
    ARGV[6]  updated_at, ms since epoch
    ARGV[7]  channel the changed boards' names are published on (top-page caches)

  Answers (see includes/contract):
    restored  version
    skipped   version (Redis already had this version or a newer one)
]]
--- @include "includes/contract"
--- @include "includes/order"

local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current >= tonumber(ARGV[5]) then return { 'skipped', 'version', current } end
local neg = stored(tonumber(ARGV[4]))
redis.call('HSET', KEYS[1], 'user_id', ARGV[1], 'name', ARGV[2], 'region', ARGV[3],
  'score', ARGV[4], 'version', ARGV[5], 'updated_at', ARGV[6])
redis.call('ZADD', KEYS[2], neg, ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[7], 'GLOBAL')
if #KEYS >= 4 then
  redis.call('ZADD', KEYS[4], neg, ARGV[1])
  redis.call('PUBLISH', ARGV[7], ARGV[3])
end
return { 'restored', 'version', tonumber(ARGV[5]) }
