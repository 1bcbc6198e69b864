/**
 * npm run rebuild-redis -- --shard ID | --all [--json]
 *
 * Restores a shard's Redis from its Postgres after Redis data loss: the
 * open periods of every board (`main` included) of every live project. A shard still in main's
 * layout from before the board engine is converted first. Entries Redis
 * already holds at the same or a newer version are left alone, so it is
 * safe to run beside live traffic.
 */
import 'dotenv/config';
import { parseArgs } from 'node:util';
import { projectScope, ShardRouter, type ProjectRef } from '@lb/common/contracts';
import { BoardsRepo, ConfigError, createLogger, KEY_PREFIX, loadTopology, PG_SERVICE_PASSWORD, PgPools } from '@lb/common/platform';
import { ArchiveRepo, ProjectsRepo, TenantsRepo } from '@lb/leaderboard-service/db';
import { rebuildShard, ShardStores, upgradeLayout, type RebuildResult } from '@lb/leaderboard-service/ops';

const HELP = `Usage: npm run rebuild-redis -- (--shard ID | --all) [--json]

Rebuilds the Redis data of a shard (every board's entries, names) from the
shard's Postgres copy. Configuration comes from the environment (.env):
TOPOLOGY or TOPOLOGY_FILE, KEY_PREFIX.

  --shard ID   shard to rebuild (repeatable)
  --all        every shard of the topology
  --json       print the result as JSON
  --help       this text`;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: { shard: { type: 'string', multiple: true }, all: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean' } },
    }).values;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n\n${HELP}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const router = new ShardRouter(loadTopology());
  const ids = args.all ? router.shards.map((s) => s.id) : (args.shard ?? []);
  if (ids.length === 0) {
    process.stderr.write(`give --shard ID or --all\n\n${HELP}\n`);
    return 2;
  }
  const unknown = ids.filter((id) => !router.shards.some((s) => s.id === id));
  if (unknown.length > 0) {
    process.stderr.write(`unknown shard ${unknown.join(', ')}; shards: ${router.shards.map((s) => s.id).join(', ')}\n`);
    return 2;
  }
  const log = createLogger('rebuild-redis', 'warn');
  const stores = new ShardStores(router.shards.filter((s) => ids.includes(s.id)), KEY_PREFIX.read(process.env), 10_000, log);
  await stores.connect(log);
  const results: RebuildResult[] = [];
  // The boards' definitions and closed periods, from the control plane (the first shard's database).
  const control = router.shards[0]!.id;
  const pools = new PgPools(router.shards, { size: 2, servicePassword: PG_SERVICE_PASSWORD.read(process.env), applicationName: 'rebuild-redis' }, log);
  try {
    // Every live project of every live tenant (a deleted project's Redis data is not to come back).
    const projectsRepo = new ProjectsRepo(pools, control);
    const projects: ProjectRef[] = [];
    for (const t of await new TenantsRepo(pools, control).list()) for (const p of (await projectsRepo.liveIds(t.id)) ?? []) projects.push({ tenant: t.id, project: p });
    const boardsRepo = new BoardsRepo(pools, control);
    const boards = new Map(await Promise.all(projects.map(async (p) => [projectScope(p), await boardsRepo.ofProject(p)] as const)));
    const archive = new ArchiveRepo(pools, control);
    for (const id of ids) {
      // A shard still in main's layout from before the board engine is converted first (what is left of it).
      await upgradeLayout(stores.get(id), router.regions);
      const total: RebuildResult = { shard: id, scanned: 0, restored: 0, skipped: 0 };
      for (const p of projects) {
        const progress = (r: RebuildResult) => {
          if (!args.json) process.stderr.write(`\r${id} ${projectScope(p)}: scanned ${r.scanned}, restored ${r.restored}, skipped ${r.skipped}`);
        };
        const r = await rebuildShard(router, stores.get(id), pools, p, boards.get(projectScope(p))!, (board, period) => archive.isClosed(p, board, period), progress);
        total.scanned += r.scanned;
        total.restored += r.restored;
        total.skipped += r.skipped;
      }
      if (!args.json) process.stderr.write('\n');
      results.push(total);
    }
  } finally {
    await stores.close();
    await pools.close();
  }
  if (args.json) process.stdout.write(`${JSON.stringify({ shards: results })}\n`);
  else for (const r of results) process.stdout.write(`shard ${r.shard}: restored ${r.restored} players (${r.skipped} already current, ${r.scanned} rows read)\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`rebuild-redis: ${e instanceof ConfigError ? e.message : ((e as Error).stack ?? String(e))}\n`);
    process.exit(1);
  },
);
