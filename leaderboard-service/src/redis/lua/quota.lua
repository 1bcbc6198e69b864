--[[
  A tenant's monthly quota on the tenant's own shard (see includes/usage):
  hands writes out to a shard's allowance, takes back what a shard gives
  up, and adds the reads and streams a replica counted, answering what the
  month has used and the thresholds newly reached.

  Input:
    KEYS[1]  the month's count hash (keys.ts QuotaKeys.count)
    KEYS[2]  the tenant's hour counters (hash)  } only with op 'add'
    KEYS[3]  the hour's tenants (set)           }
    KEYS[4]  the shard's hours index (zset)     }
    ARGV[1]  JSON:
      op          'lease' (hand out up to `want` writes, fewer near the end),
                  'return' (`n` writes a shard gave up),
                  'add' (`n` reads and streams counted, `counts` into the hour),
                  'state'
      limit       the tenant's monthly quota (0 = none: nothing is handed out or refused)
      want, shards          (lease) the most to hand out; how many shards share the rest
      n                     (return, add)
      counts                (add) { ['<project>|<kind>'] = count }
      tenant, hour, hour_ms, usage_ttl_s  (add)
      month_ttl_s           how long the month's count is kept
      thresholds            percents to tell, ascending

  Answers (see includes/contract):
    ok  granted (lease: how many were handed out), used, crossed (list of percents)
]]
--- @include "includes/contract"
--- @include "includes/usage"

local a = cjson.decode(ARGV[1])
local count = KEYS[1]
local limit = a.limit
local granted = 0
if a.op == 'lease' then
  local remaining = limit - quotaUsed(count)
  if remaining > 0 then
    -- Near the end the shards get smaller shares, so little sits unused in an allowance.
    granted = math.min(a.want, remaining, math.max(1, math.floor(remaining / (2 * a.shards))))
    redis.call('HINCRBY', count, 'granted', granted)
  end
elseif a.op == 'return' then
  if a.n > 0 then redis.call('HINCRBY', count, 'granted', -a.n) end
elseif a.op == 'add' then
  if a.n > 0 then redis.call('HINCRBY', count, 'others', a.n) end
  for field, n in pairs(a.counts) do
    countUsage(KEYS[2], KEYS[3], KEYS[4], field, n, a.tenant, a.hour, a.hour_ms, a.usage_ttl_s)
  end
end
quotaTouch(count, a.month_ttl_s)
local used = quotaUsed(count)
local crossed = quotaCrossed(count, used, limit, a.thresholds)
return { 'ok', 'granted', granted, 'used', used, 'crossed', crossed }
