#!/bin/sh
# One Redis node of a shard in docker-compose.yml, started by the stack's
# restart rule (devtools/src/infra/redis-ha.ts, the same for `npm start`):
#
#   redis-node.sh MASTER SELF FIRST_PRIMARY [redis-server options...]
#
# - No Sentinel answers (the very first start: they start after the nodes):
#   FIRST_PRIMARY starts as primary, the other node as its replica.
# - A Sentinel names another node primary of MASTER: rejoin as its replica.
# - They still name this node (a restart before they failed over): do not
#   come back as a stale primary from the append-only file while the replica
#   may be promoted; wait (every 200 ms, up to 12 s) for them to name another
#   node, and only then start as primary, saying so.
set -eu
master=$1 self=$2 first=$3
shift 3
sentinels="sentinel-1 sentinel-2 sentinel-3"
wait_ms=12000

# Prints the primary a Sentinel names other than this node; fails if none does.
# Sets $answered when at least one Sentinel answered.
answered=
other_primary() {
  for s in $sentinels; do
    a=$(timeout 1 redis-cli -h "$s" -p 26379 --raw SENTINEL get-master-addr-by-name "$master" 2>/dev/null | head -n 1 || true)
    [ -n "$a" ] && answered=yes
    if [ -n "$a" ] && [ "$a" != "$self" ]; then echo "$a"; return 0; fi
  done
  return 1
}


if primary=$(other_primary); then
  echo "redis-node $self: the Sentinels name $primary primary of $master: rejoining as its replica"
  exec redis-server "$@" --replicaof "$primary" 6379
fi
if [ -z "$answered" ]; then
  if [ "$self" = "$first" ]; then
    echo "redis-node $self: no Sentinel answered (first start): primary of $master"
    exec redis-server "$@"
  fi
  echo "redis-node $self: no Sentinel answered (first start): replica of $first ($master)"
  exec redis-server "$@" --replicaof "$first" 6379
fi
echo "redis-node $self: the Sentinels still name this node primary of $master: waiting up to $wait_ms ms for a promotion"
waited=0
while [ "$waited" -lt "$wait_ms" ]; do
  sleep 0.2
  waited=$((waited + 200))
  if primary=$(other_primary); then
    echo "redis-node $self: the Sentinels promoted $primary after $waited ms: rejoining $master as its replica"
    exec redis-server "$@" --replicaof "$primary" 6379
  fi
done
echo "redis-node $self: NO replica of $master was promoted within $wait_ms ms: starting as PRIMARY from its own append-only file"
exec redis-server "$@"
