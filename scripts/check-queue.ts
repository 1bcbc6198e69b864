/**
 * `npm run check-queue -- [--shard ID] [--limit N] [--json]`: the state of
 * every shard's score queue (TOPOLOGY / TOPOLOGY_FILE and KEY_PREFIX from the
 * environment or `.env`): the backlog (events not yet in Postgres, the
 * figure QUEUE_REJECT_LENGTH applies to), job counts, age of the oldest
 * waiting job, the next waiting jobs and the latest failed ones (the
 * dead-letter queue).
 */
import 'dotenv/config';
import type { Job, Queue } from 'bullmq';
import { queuePrefix, SCORE_QUEUE, shardKeys, type ShardDef } from '@lb/common/contracts';
import { openRedis } from '@lb/common/platform';
import {
  closeAll,
  EXIT_FAILED,
  EXIT_OK,
  loadQueueEnv,
  openScoreQueue,
  parseCommandLine,
  positiveInt,
  run,
  selectShards,
  summarize,
  withTimeout,
} from './queue/cli.js';

const USAGE = `usage: npm run check-queue -- [--shard ID] [--limit N] [--json] [--timeout-ms MS]

  --shard ID        only this shard (default: every shard of the topology)
  --limit N         jobs listed per shard and state (default 5)
  --json            one JSON document on stdout instead of text
  --timeout-ms MS   give up on an unreachable shard after MS (default 5000)
  --help            this text

Exit codes: 0 ok, 1 a shard could not be read, 2 usage or configuration error.
`;

/** The JSON form of one shard's queue. */
interface ShardReport {
  shard: string;
  prefix: string;
  queue: string;
  /** Events written and not yet persisted (the outbox), and those of them not yet on the queue. */
  backlog?: { events: number; notQueued: number };
  counts?: Record<string, number>;
  /** ms since the oldest waiting job was added; null when nothing waits. */
  oldestWaitingAgeMs?: number | null;
  /** The next jobs to be processed, oldest first. */
  waiting?: JobLine[];
  /** The most recently failed jobs first. */
  failed?: JobLine[];
  error?: string;
}

interface JobLine {
  id: string | undefined;
  ageMs: number;
  attemptsMade: number;
  failedReason?: string;
  data: Record<string, unknown> | string;
}

const COUNTED = ['waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed'] as const;

/** The shard's outbox: every event stays there from its write until the worker has it in Postgres. */
async function backlogOf(shard: ShardDef, keyPrefix: string): Promise<{ events: number; notQueued: number }> {
  const redis = openRedis(shard.redis, { reconnect: false });
  redis.on('error', () => {});
  await redis.connect();
  const client = redis.client;
  try {
    const k = shardKeys(shard.id, keyPrefix);
    const [events, notQueued] = await Promise.all([client.hLen(k.outbox), client.zCard(k.outboxIndex)]);
    return { events, notQueued };
  } finally {
    await redis.close();
  }
}

async function inspect(queue: Queue, shard: ShardDef, keyPrefix: string, limit: number, now: number): Promise<ShardReport> {
  const base = { shard: shard.id, prefix: queuePrefix(shard.id, keyPrefix), queue: SCORE_QUEUE };
  const backlog = await backlogOf(shard, keyPrefix);
  const counts = await queue.getJobCounts(...COUNTED);
  // asc = oldest first: the order the worker takes them in.
  const waiting = await queue.getJobs(['waiting'], 0, limit - 1, true);
  const oldest = counts.waiting! > 0 ? (await queue.getJobs(['waiting'], 0, 0, true))[0] : undefined;
  const failed = await queue.getJobs(['failed'], 0, limit - 1, false);
  const line = (j: Job): JobLine => ({
    id: j.id,
    ageMs: Math.max(0, now - j.timestamp),
    attemptsMade: j.attemptsMade,
    ...(j.failedReason ? { failedReason: j.failedReason } : {}),
    data: summarize(j.data),
  });
  return {
    ...base,
    backlog,
    counts,
    oldestWaitingAgeMs: oldest ? Math.max(0, now - oldest.timestamp) : null,
    waiting: waiting.map(line),
    failed: failed.map(line),
  };
}

function printText(reports: ShardReport[]): void {
  const out: string[] = [];
  const fmtAge = (ms: number) => (ms < 10_000 ? `${ms} ms` : ms < 3_600_000 ? `${(ms / 1000).toFixed(1)} s` : `${(ms / 3_600_000).toFixed(1)} h`);
  const fmtData = (d: JobLine['data']) => (typeof d === 'string' ? d : Object.entries(d).map(([k, v]) => `${k}=${v}`).join(' '));
  for (const r of reports) {
    out.push(`shard ${r.shard}  (queue "${r.queue}", prefix ${r.prefix})`);
    if (r.error) {
      out.push(`  ERROR: ${r.error}`, '');
      continue;
    }
    out.push(`  backlog: ${r.backlog!.events} events not yet in Postgres (${r.backlog!.notQueued} of them not yet on the queue)`);
    out.push(`  ${COUNTED.map((k) => `${k} ${r.counts![k] ?? 0}`).join('  ')}`);
    out.push(`  oldest waiting: ${r.oldestWaitingAgeMs === null ? '-' : fmtAge(r.oldestWaitingAgeMs!)}`);
    if (r.waiting!.length > 0) {
      out.push(`  next ${r.waiting!.length} waiting:`);
      for (const j of r.waiting!) out.push(`    ${j.id}  age ${fmtAge(j.ageMs)}  ${fmtData(j.data)}`);
    }
    if (r.failed!.length > 0) {
      out.push(`  latest ${r.failed!.length} failed:`);
      for (const j of r.failed!) out.push(`    ${j.id}  attempts ${j.attemptsMade}  ${fmtData(j.data)}  reason: ${j.failedReason ?? '?'}`);
    }
    out.push('');
  }
  process.stdout.write(out.join('\n'));
}

async function main(): Promise<number> {
  const args = parseCommandLine(process.argv.slice(2), {
    shard: { type: 'string' },
    limit: { type: 'string' },
    json: { type: 'boolean' },
    'timeout-ms': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (args.help) {
    process.stdout.write(USAGE);
    return EXIT_OK;
  }
  const limit = positiveInt('limit', args.limit, 5);
  const timeoutMs = positiveInt('timeout-ms', args['timeout-ms'], 5000);
  const { topology, keyPrefix } = loadQueueEnv();
  const shards = selectShards(topology, args.shard);
  const queues = shards.map((s) => openScoreQueue(s, keyPrefix));
  try {
    const now = Date.now();
    const reports = await Promise.all(
      shards.map((s, i) =>
        withTimeout(inspect(queues[i]!, s, keyPrefix, limit, now), timeoutMs, `shard ${s.id}`).catch(
          (e: unknown): ShardReport => ({ shard: s.id, prefix: queuePrefix(s.id, keyPrefix), queue: SCORE_QUEUE, error: (e as Error).message }),
        ),
      ),
    );
    if (args.json) process.stdout.write(`${JSON.stringify({ keyPrefix, at: new Date(now).toISOString(), shards: reports }, null, 2)}\n`);
    else printText(reports);
    return reports.some((r) => r.error) ? EXIT_FAILED : EXIT_OK;
  } finally {
    await closeAll(queues);
  }
}

run('check-queue', USAGE, main);
