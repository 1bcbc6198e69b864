--[[
  A token bucket, as rate-limiter-flexible's `customIncrTtlLuaScript`.

  rate-limiter-flexible calls it like its own fixed-window script and reads
  back {consumedPoints, msBeforeNext}; it refuses when consumedPoints exceeds
  its `points`. Here "consumed" is capacity minus the tokens left, so a refill
  at capacity/window per millisecond turns it into a token bucket. A refused
  request takes no token.

  Input:
    KEYS[1]  bucket hash (tokens, ts)
    ARGV[1]  cost (points to consume)
    ARGV[2]  window, whole seconds (unused: the exact window is ARGV[4])
    ARGV[3]  capacity (rate-limiter-flexible `points`)
    ARGV[4]  window, seconds, may be fractional (rate-limiter-flexible `duration`)

  Output: { consumed, msBeforeNext }
    consumed <= capacity: allowed; msBeforeNext = time until the bucket is full
    consumed  > capacity: refused; msBeforeNext = time until `cost` tokens exist
]]
local cost = tonumber(ARGV[1])
local capacity = tonumber(ARGV[3])
local windowMs = tonumber(ARGV[4]) * 1000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
local rate = capacity / windowMs
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)

local consumed, wait
if tokens >= cost then
  tokens = tokens - cost
  consumed = math.ceil(capacity - tokens)
  if consumed > capacity then consumed = capacity end
  wait = math.ceil((capacity - tokens) / rate)
else
  consumed = capacity + cost
  wait = math.ceil((cost - tokens) / rate)
end
-- Fractional tokens are kept exactly: string.format avoids Lua's 14-digit tostring.
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(windowMs * 2))
return { consumed, wait }
