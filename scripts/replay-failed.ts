/**
 * `npm run replay-failed -- --shard ID | --all-shards [--id JOBID]... [--json]`:
 * moves failed score jobs (the dead-letter queue) back to waiting, with their
 * attempt counters reset, once the cause (Postgres down, a bug) is fixed.
 * Without --id, every job failed at the time of the call is moved. Replaying
 * is safe: the worker's writes are idempotent.
 */
import 'dotenv/config';
import type { Queue } from 'bullmq';
import type { ShardDef } from '@lb/common/contracts';
import {
  closeAll,
  EXIT_FAILED,
  EXIT_OK,
  loadQueueEnv,
  openScoreQueue,
  parseCommandLine,
  run,
  selectShards,
  UsageError,
  withTimeout,
} from './queue/cli.js';

const USAGE = `usage: npm run replay-failed -- (--shard ID | --all-shards) [--id JOBID]... [--json]

  --shard ID      the shard whose failed jobs to replay
  --all-shards    every shard of the topology
  --id JOBID      only this job (repeatable; job ids are "<user_id>#<version>");
                  default: every job in the failed set
  --json          one JSON document on stdout instead of one line per job
  --help          this text

Exit codes: 0 every selected job moved, 1 some job or shard failed,
2 usage or configuration error.
`;

/** Ids read from the failed set per round trip. */
const PAGE = 1000;
/** Jobs retried at once. */
const PARALLEL = 16;

interface ShardResult {
  shard: string;
  moved: string[];
  /** Requested ids in another state than failed. */
  notFailed: { id: string; state: string }[];
  errors: { id?: string; error: string }[];
}

async function failedIds(queue: Queue): Promise<string[]> {
  const ids: string[] = [];
  for (let start = 0; ; start += PAGE) {
    const page = await queue.getRanges(['failed'], start, start + PAGE - 1, true);
    ids.push(...page);
    if (page.length < PAGE) return ids;
  }
}

async function replayShard(queue: Queue, shard: ShardDef, only: string[] | undefined, onMoved: (shard: string, id: string) => void): Promise<ShardResult> {
  const r: ShardResult = { shard: shard.id, moved: [], notFailed: [], errors: [] };
  const ids = only ?? (await failedIds(queue));
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const id = ids[next++]!;
      try {
        const job = await queue.getJob(id);
        if (!job) continue; // reported as not found unless another shard holds it
        const state = await job.getState();
        if (state !== 'failed') {
          r.notFailed.push({ id, state });
          continue;
        }
        // Fresh attempts: a replayed job gets the full retry policy again.
        await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
        r.moved.push(id);
        onMoved(shard.id, id);
      } catch (e) {
        r.errors.push({ id, error: (e as Error).message });
      }
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  return r;
}

async function main(): Promise<number> {
  const args = parseCommandLine(process.argv.slice(2), {
    shard: { type: 'string' },
    'all-shards': { type: 'boolean' },
    id: { type: 'string', multiple: true },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (args.help) {
    process.stdout.write(USAGE);
    return EXIT_OK;
  }
  if (args.shard === undefined && !args['all-shards']) throw new UsageError('--shard ID or --all-shards is required');
  if (args.shard !== undefined && args['all-shards']) throw new UsageError('--shard and --all-shards exclude each other');
  const only = args.id ? [...new Set(args.id)] : undefined;
  if (only?.some((id) => id.trim() === '')) throw new UsageError('--id must not be empty');
  const { topology, keyPrefix } = loadQueueEnv();
  const shards = selectShards(topology, args.shard);
  const queues = shards.map((s) => openScoreQueue(s, keyPrefix));
  const onMoved = args.json ? () => undefined : (shard: string, id: string) => process.stdout.write(`moved ${shard} ${id}\n`);
  try {
    const results = await Promise.all(
      shards.map((s, i) =>
        withTimeout(queues[i]!.waitUntilReady(), 5000, `shard ${s.id}`)
          .then(() => replayShard(queues[i]!, s, only, onMoved))
          .catch((e: unknown): ShardResult => ({ shard: s.id, moved: [], notFailed: [], errors: [{ error: (e as Error).message }] })),
      ),
    );
    // With --all-shards an id is only missing if no shard holds it.
    const found = new Set(results.flatMap((r) => [...r.moved, ...r.notFailed.map((n) => n.id), ...r.errors.flatMap((e) => (e.id ? [e.id] : []))]));
    const missing = (only ?? []).filter((id) => !found.has(id));
    const notFailed = results.flatMap((r) => r.notFailed.map((n) => ({ shard: r.shard, ...n })));
    const errors = results.flatMap((r) => r.errors.map((e) => ({ shard: r.shard, ...e })));
    if (args.json) {
      process.stdout.write(`${JSON.stringify({ keyPrefix, moved: results.map((r) => ({ shard: r.shard, ids: r.moved })), notFound: missing, notFailed, errors }, null, 2)}\n`);
    } else {
      for (const id of missing) process.stdout.write(`not found ${id}\n`);
      for (const n of notFailed) process.stdout.write(`not failed ${n.shard} ${n.id} (${n.state})\n`);
      for (const e of errors) process.stdout.write(`error ${e.shard}${e.id ? ` ${e.id}` : ''}: ${e.error}\n`);
      process.stdout.write(`${results.map((r) => `${r.shard}: ${r.moved.length} moved`).join(', ')}\n`);
    }
    return missing.length + notFailed.length + errors.length > 0 ? EXIT_FAILED : EXIT_OK;
  } finally {
    await closeAll(queues);
  }
}

run('replay-failed', USAGE, main);
