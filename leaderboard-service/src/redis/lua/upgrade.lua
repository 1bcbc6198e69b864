--[[
  Converts a shard's keys from an older layout (recovery/layout.ts runs it
  in batches at start-up and before rebuild-redis): the board `main`'s
  entries from the layout it had before it ran on the board engine
  (layout 1: 'views', 'players'), and the project keys of layout 2, which
  had no project in their names, into the default project's ('rename').
  Idempotent: a batch run twice, or by two replicas starting together,
  changes nothing the second time, and it never overwrites what the engine
  has written (HSETNX, RENAME only onto nothing).

  ARGV[1] = 'views':
    KEYS  old view 1, new view 1, old view 2, new view 2, ...
          (`board:<view>` -> `b:main:all:z:<view>`; the sorted sets are the
          same, stored scores negated, members the user ids)
  ARGV[1] = 'players':
    KEYS[1] versions hash of main's period `all`   KEYS[2] regions hash
    KEYS[3] names hash                             KEYS[4..] old user hashes
            (user_id, name, region, score, version, updated_at): each one's
            version, home region and name move to the hashes, then it goes

  ARGV[1] = 'rename':
    KEYS  old name 1, new name 1, old name 2, new name 2, ... (every name
          from @lb/common keys.ts `upgradedKeyName`): each old key that
          still exists is renamed (value and TTL as they are) unless the
          new one exists already; such an old key is left where it is,
          counted as kept, never merged over what the new key holds

  Answers (see includes/contract):
    ok  moved (views renamed, players converted, or keys renamed),
        kept (rename: old keys left because the new name was taken)
]]
local moved, kept = 0, 0
if ARGV[1] == 'rename' then
  for i = 1, #KEYS, 2 do
    if redis.call('EXISTS', KEYS[i]) == 1 then
      if redis.call('EXISTS', KEYS[i + 1]) == 0 then
        redis.call('RENAME', KEYS[i], KEYS[i + 1])
        moved = moved + 1
      else
        kept = kept + 1
      end
    end
  end
elseif ARGV[1] == 'views' then
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
return { 'ok', 'moved', moved, 'kept', kept }
