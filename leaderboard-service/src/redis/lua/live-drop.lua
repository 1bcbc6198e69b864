--[[
  Drops an idle live channel's registration (leaderboard-service live/registry.ts),
  unless it was opened or seen with subscribers after the cutoff: a subscriber that
  was just redirected to the channel may not have reached nchan yet.

  Input:
    KEYS[1]  the shard's live channels (zset: channel id -> last seen, ms)
    KEYS[2]  the shard's live specs (hash: channel id -> spec JSON)
    KEYS[3]  the channel's last published hash
    ARGV[1]  channel id
    ARGV[2]  cutoff, ms epoch: a channel seen after it is kept

  Answer (see includes/contract):
    dropped                     the registration is gone
    kept     seen               seen after the cutoff (or registered again)
]]
local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
if seen and tonumber(seen) > tonumber(ARGV[2]) then
  return { 'kept', 'seen', seen }
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
return { 'dropped' }
