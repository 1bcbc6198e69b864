--[[
  Converts the board `main`'s entries from the layout it had before it ran
  on the board engine (recovery/layout.ts runs it in batches at start-up
  and before rebuild-redis). Idempotent: a batch run twice, or by two
  replicas starting together, changes nothing the second time, and it never
  overwrites what the engine has written (HSETNX, RENAME only onto nothing).

  ARGV[1] = 'views':
    KEYS  old view 1, new view 1, old view 2, new view 2, ...
          (`board:<view>` -> `b:main:all:z:<view>`; the sorted sets are the
          same, stored scores negated, members the user ids)
  ARGV[1] = 'players':
    KEYS[1] versions hash of main's period `all`   KEYS[2] regions hash
    KEYS[3] names hash                             KEYS[4..] old user hashes
            (user_id, name, region, score, version, updated_at): each one's
            version, home region and name move to the hashes, then it goes

  Answers (see includes/contract):
    ok  moved (views renamed, or players converted)
]]
local moved = 0
if ARGV[1] == 'views' then
  for i = 1, #KEYS, 2 do
    if redis.call('EXISTS', KEYS[i]) == 1 and redis.call('EXISTS', KEYS[i + 1]) == 0 then
      redis.call('RENAME', KEYS[i], KEYS[i + 1])
      moved = moved + 1
    end
  end
else
  for i = 4, #KEYS do
    local h = redis.call('HMGET', KEYS[i], 'user_id', 'version', 'region', 'name')
    if h[1] then
      if h[2] then redis.call('HSETNX', KEYS[1], h[1], h[2]) end
      if h[3] then redis.call('HSETNX', KEYS[2], h[1], h[3]) end
      if h[4] then redis.call('HSETNX', KEYS[3], h[1], h[4]) end
      moved = moved + 1
    end
    redis.call('DEL', KEYS[i])
  end
end
return { 'ok', 'moved', moved }
