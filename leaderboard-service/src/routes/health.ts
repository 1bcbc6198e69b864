/**
 * GET /health: readiness, every Redis shard and Postgres database must
 * answer; `top_cache` tells whether top pages come from memory,
 * `live_channels` how many live channels this replica publishes.
 * GET /health/live: liveness, the process serves requests. Gateways probe
 * this one: a replica whose shard is down still serves everything that does
 * not need that shard, so it stays in rotation.
 */
import { Router } from 'express';
import { probe, type PgPools } from '@lb/common/platform';
import type { TopPages } from '../leaderboard/top-cache.js';
import type { LiveChannels } from '../live/publisher.js';
import type { ShardStores } from '../redis/shard-store.js';

export function healthRoutes(deps: { stores: ShardStores; pools: PgPools; topCache: TopPages; live: Pick<LiveChannels, 'channels'>; instanceId: string }): Router {
  const r = Router();
  r.get('/health/live', (_req, res) => {
    res.json({ ok: true, instance: deps.instanceId });
  });
  r.get('/health', async (_req, res) => {
    const redis: Record<string, string> = {};
    const postgres: Record<string, string> = {};
    await Promise.all([
      ...deps.stores.all().map(async (s) => {
        redis[s.shard.id] = await probe(() => s.ping());
      }),
      ...deps.pools.distinct().map(async ({ shardId, pool }) => {
        postgres[shardId] = await probe(() => pool.query('SELECT 1'));
      }),
    ]);
    const down = [
      ...Object.entries(redis).filter(([, v]) => v !== 'ok').map(([k]) => `redis:${k}`),
      ...Object.entries(postgres).filter(([, v]) => v !== 'ok').map(([k]) => `postgres:${k}`),
    ];
    res.status(down.length === 0 ? 200 : 503).json({ ok: down.length === 0, instance: deps.instanceId, down, redis, postgres, top_cache: deps.topCache.state(), live_channels: deps.live.channels() });
  });
  return r;
}
