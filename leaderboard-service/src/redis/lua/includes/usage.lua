--[[
  Metered usage and monthly quotas, the Lua side (the TypeScript side is
  @lb/common contracts/usage.ts and keys.ts, which name the keys):

  - a tenant's hour on a shard is a hash `<project>|<kind>` -> count; the
    first count of a field makes the hour known (the hours index, the
    hour's set of tenants) and sets the hour's keys to expire;
  - a tenant's month on its own shard is a hash: `granted` (writes handed
    out to the shards' allowances), `others` (reads and streams counted),
    `crossed:<percent>` (a threshold already told, once a month).
]]

-- Adds n operations to a field of a tenant's hour.
local function countUsage(countsKey, tenantsKey, hoursKey, field, n, tenant, hour, hourMs, ttl)
  if redis.call('HINCRBY', countsKey, field, n) == n then
    redis.call('EXPIRE', countsKey, ttl)
    redis.call('SADD', tenantsKey, tenant)
    redis.call('EXPIRE', tenantsKey, ttl)
    redis.call('ZADD', hoursKey, hourMs, hour)
  end
end

-- What a tenant's month has used: its writes handed out and its other operations.
local function quotaUsed(countKey)
  local v = redis.call('HMGET', countKey, 'granted', 'others')
  return (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
end

-- The thresholds (percent of `limit`) `used` has reached and that were not
-- told yet this month: each is answered once, ever, per month.
local function quotaCrossed(countKey, used, limit, thresholds)
  local crossed = {}
  if limit <= 0 then return crossed end
  for _, t in ipairs(thresholds) do
    if used * 100 >= limit * t and redis.call('HSETNX', countKey, 'crossed:' .. t, used) == 1 then
      crossed[#crossed + 1] = t
    end
  end
  return crossed
end

-- Keeps a month's count for a while after the month (the usage answers read it).
local function quotaTouch(countKey, ttl)
  if redis.call('TTL', countKey) < 0 then redis.call('EXPIRE', countKey, ttl) end
end
