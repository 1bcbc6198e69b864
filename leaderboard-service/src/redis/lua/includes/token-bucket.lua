--[[
  Token buckets kept in a hash (tokens, ts): `capacity` tokens, refilled at
  capacity per `windowMs`, fractions kept. Looking at a bucket changes
  nothing; a token is taken only by bucketTake, so a refused request leaves
  every bucket as it was.
]]

-- Tokens in the bucket now, and the refill rate per ms.
local function bucketTokens(key, capacity, windowMs, now)
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1]) or capacity
  local ts = tonumber(state[2]) or now
  local rate = capacity / windowMs
  return math.min(capacity, tokens + math.max(0, now - ts) * rate), rate
end

-- Ms until `tokens` reaches one token.
local function bucketWait(tokens, rate) return math.ceil((1 - tokens) / rate) end

-- Takes one token (the caller checked there is one).
local function bucketTake(key, tokens, now, windowMs)
  -- string.format keeps the fraction exactly (tostring would round to 14 digits).
  redis.call('HSET', key, 'tokens', string.format('%.6f', tokens - 1), 'ts', now)
  redis.call('PEXPIRE', key, math.ceil(windowMs * 2))
end
