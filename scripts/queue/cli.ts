/**
 * Shared plumbing of the queue scripts (check-queue, replay-failed): the
 * environment (dotenv is loaded by the scripts), the shards' score queues
 * built from the queue contract, argument errors, and exit codes.
 *
 * Exit codes: 0 ok, 1 runtime failure (a shard unreachable, a job not
 * moved), 2 usage or configuration error.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { Queue } from 'bullmq';
import { queuePrefix, SCORE_QUEUE, type ShardDef, type Topology } from '@lb/common/contracts';
import {
  ConfigError,
  connectionFor,
  KEY_PREFIX,
  loadTopology,
  type Env,
} from '@lb/common/platform';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** A bad command line; printed with the usage text, exit code 2. */
export class UsageError extends Error {}

/** Parses argv strictly; unknown options and stray arguments are usage errors. */
export function parseCommandLine<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** A positive integer option value. */
export function positiveInt(name: string, raw: string | undefined, def: number): number {
  if (raw === undefined) return def;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new UsageError(`--${name} must be a positive integer, got "${raw}"`);
  return Number(raw);
}

export interface QueueEnv {
  readonly topology: Topology;
  readonly keyPrefix: string;
}

/** Topology and KEY_PREFIX from the environment (ConfigError names the key). */
export function loadQueueEnv(env: Env = process.env): QueueEnv {
  return { topology: loadTopology(env), keyPrefix: KEY_PREFIX.read(env) };
}

/** The shards to work on: one by id (usage error if unknown) or all. */
export function selectShards(topology: Topology, id: string | undefined): readonly ShardDef[] {
  if (id === undefined) return topology.shards;
  const shard = topology.shards.find((s) => s.id === id);
  if (!shard) throw new UsageError(`unknown shard "${id}" (topology has ${topology.shards.map((s) => s.id).join(', ')})`);
  return [shard];
}

/**
 * A shard's score queue for an operator tool: fails fast instead of waiting
 * for an unreachable Redis, and does not rewrite the queue's metadata.
 */
export function openScoreQueue(shard: ShardDef, keyPrefix: string): Queue {
  const queue = new Queue(SCORE_QUEUE, {
    connection: { ...connectionFor(shard.redis, false), connectTimeout: 3000, retryStrategy: () => null },
    prefix: queuePrefix(shard.id, keyPrefix),
    skipMetasUpdate: true,
  });
  // Connection errors surface through the awaited calls.
  queue.on('error', () => undefined);
  return queue;
}

/** Rejects with `what timed out` when `p` takes longer than `ms`. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Closes queues without letting a dead connection hang the script. */
export async function closeAll(queues: readonly Queue[]): Promise<void> {
  await Promise.allSettled(queues.map((q) => withTimeout(q.close(), 2000, 'close')));
}

/** A one-line, bounded summary of a job's data (which may be malformed). */
export function summarize(data: unknown): Record<string, unknown> | string {
  if (!data || typeof data !== 'object' || Array.isArray(data)) return JSON.stringify(data)?.slice(0, 120) ?? String(data);
  const envelope = (data as { events?: unknown }).events;
  if (Array.isArray(envelope)) {
    const first = summarize(envelope[0]);
    return { events: envelope.length, first: typeof first === 'string' ? first : `${first.user_id}#${first.version}` };
  }
  const d = data as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of ['user_id', 'version', 'op', 'score', 'delta', 'region', 'ts']) {
    if (d[k] !== undefined) out[k] = typeof d[k] === 'string' ? (d[k] as string).slice(0, 64) : d[k];
  }
  return out;
}

/**
 * Runs a script's main: usage errors print the message and usage (exit 2),
 * configuration errors name the key (exit 2), anything else exits 1.
 */
export function run(name: string, usage: string, main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      if (e instanceof UsageError) {
        process.stderr.write(`${name}: ${e.message}\n${usage}`);
        process.exit(EXIT_USAGE);
      }
      if (e instanceof ConfigError) {
        process.stderr.write(`${name}: ${e.message}\n`);
        process.exit(EXIT_USAGE);
      }
      process.stderr.write(`${name}: ${(e as Error).stack ?? String(e)}\n`);
      process.exit(EXIT_FAILED);
    },
  );
}
