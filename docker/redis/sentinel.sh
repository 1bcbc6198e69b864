#!/bin/sh
# One of the three Redis Sentinels of docker-compose.yml (quorum 2), watching
# every shard (master lb-<shard>, first primary redis-<shard>) with the
# stack's timings (scripts/stack, devtools/src/infra/sentinel.ts): a killed
# primary is replaced within ~3 s.
#
#   sentinel.sh SELF
#
# Sentinel rewrites its configuration as it learns (the other Sentinels, the
# replicas, the current primary after a failover): it is written once, into
# the Sentinel's own volume, and kept across restarts of the container.
# Addresses are the compose service names (announced by every node with
# --replica-announce-ip), so they survive containers changing IPs.
set -eu
self=$1
conf=/data/sentinel.conf
if [ ! -s "$conf" ]; then
  {
    echo "port 26379"
    echo "dir /data"
    echo "sentinel resolve-hostnames yes"
    echo "sentinel announce-hostnames yes"
    echo "sentinel announce-ip $self"
    for shard in na eu asia; do
      echo "sentinel monitor lb-$shard redis-$shard 6379 2"
      echo "sentinel down-after-milliseconds lb-$shard 1500"
      echo "sentinel failover-timeout lb-$shard 4000"
      echo "sentinel parallel-syncs lb-$shard 1"
    done
  } > "$conf.tmp"
  mv "$conf.tmp" "$conf"
fi
exec redis-server "$conf" --sentinel
