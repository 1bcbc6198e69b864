/**
 * Starting one Redis node of a shard that has a primary, a replica and
 * Sentinels watching them: which role it takes, by the restart rule.
 *
 * - The very first start is told its role: the primary starts plain, the
 *   replica `--replicaof` the primary.
 * - Any later start asks the Sentinels for the master's current primary
 *   (`SENTINEL get-master-addr-by-name`). When they name the other node, it
 *   starts as a replica of that one (it rejoins the promoted node).
 * - When they still name this node (they have not failed over yet, e.g. the
 *   primary was restarted within down-after-milliseconds), it must not come
 *   back as primary from its own append-only file while the replica may be
 *   promoted (two primaries, and the writes acknowledged by the promoted one
 *   would be lost when Sentinel demotes it again): it waits, polling every
 *   200 ms, for the Sentinels to name another node, up to
 *   {@link DEFAULT_PROMOTION_WAIT_MS} (failover-timeout × 2 + margins).
 *   Only if none is promoted by then (the replica is down too) does it start
 *   as primary from its AOF, and says so.
 * - When no Sentinel answers at all, it takes its `fallback` role (the role
 *   it last had) and says so.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { startRedis, type RedisAddress, type RedisProcess, type StartRedisOptions } from './redis-server.js';
import { askSentinels, SENTINEL_DEFAULTS } from './sentinel.js';

/**
 * How long a restarted node that the Sentinels still name primary waits for
 * a promotion: down-after + failover-timeout × 2 + 3 s (12.5 s with the
 * stack's timings). The failover-timeout × 2 is there because when the
 * Sentinels' first election splits (no majority), a Sentinel tries again
 * only that long after; the rest covers noticing the death, the vote and the
 * promotion itself.
 */
export const DEFAULT_PROMOTION_WAIT_MS = SENTINEL_DEFAULTS.downAfterMs + SENTINEL_DEFAULTS.failoverTimeoutMs * 2 + 3000;
const POLL_MS = 200;

/** A role to start in: primary, or the replica of a primary. */
export type NodeRole = 'primary' | RedisAddress;

export interface StartHaRedisOptions extends Omit<StartRedisOptions, 'replicaOf'> {
  /** The Sentinel master name of the shard (`lb-na`). */
  readonly master: string;
  /** Ports of the Sentinels on 127.0.0.1. */
  readonly sentinelPorts: readonly number[];
  /** The first start of this node: its role is given, the Sentinels are not asked (they may not run yet). */
  readonly initial?: NodeRole;
  /** A later start when no Sentinel answers: the role it last had (default primary). */
  readonly fallback?: NodeRole;
  /** See {@link DEFAULT_PROMOTION_WAIT_MS}. */
  readonly promotionWaitMs?: number;
  /** What it decided and why (default: stderr). */
  readonly log?: (line: string) => void;
  /** Ends the wait for a promotion (the start then rejects). */
  readonly signal?: AbortSignal;
}

export interface HaRedisStart {
  readonly proc: RedisProcess;
  readonly role: 'primary' | 'replica';
  /** The primary it replicates, for a replica. */
  readonly replicaOf: RedisAddress | undefined;
  /** Why it took that role, in one sentence (also logged). */
  readonly reason: string;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

function sameNode(a: RedisAddress, b: RedisAddress): boolean {
  return a.port === b.port && (a.host === b.host || (LOOPBACK.has(a.host) && LOOPBACK.has(b.host)));
}

const addr = (a: RedisAddress): string => `${a.host}:${a.port}`;

/** Starts one node of an HA shard in the role the restart rule gives it (see the module comment). */
export async function startHaRedisNode(o: StartHaRedisOptions): Promise<HaRedisStart> {
  const log = o.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const name = o.name ?? 'redis';
  const { role, reason } = await decideRole(o, name, log);
  log(`${name}: ${reason}`);
  const proc = await startRedis({
    ...o,
    ...(role !== 'primary' && { replicaOf: role }),
    onWarning: o.onWarning ?? log,
  });
  return { proc, role: role === 'primary' ? 'primary' : 'replica', replicaOf: role === 'primary' ? undefined : role, reason };
}

async function decideRole(o: StartHaRedisOptions, name: string, log: (line: string) => void): Promise<{ role: NodeRole; reason: string }> {
  if (o.initial) {
    return o.initial === 'primary'
      ? { role: 'primary', reason: `first start: primary of ${o.master}` }
      : { role: o.initial, reason: `first start: replica of ${addr(o.initial)} (${o.master})` };
  }
  if (!o.port) throw new Error(`${name}: a restart of a node of ${o.master} needs its port (the Sentinels know it by its address)`);
  const self: RedisAddress = { host: '127.0.0.1', port: o.port };
  const other = (answers: Array<RedisAddress | undefined>): RedisAddress | undefined => answers.find((a) => a !== undefined && !sameNode(a, self));
  const answers = await askSentinels(o.sentinelPorts, o.master);
  if (answers.every((a) => a === undefined)) {
    const fallback = o.fallback ?? 'primary';
    return {
      role: fallback,
      reason:
        fallback === 'primary'
          ? `no Sentinel answered for ${o.master}: starting as PRIMARY from its own append-only file (its last role)`
          : `no Sentinel answered for ${o.master}: starting as a replica of ${addr(fallback)} (its last role)`,
    };
  }
  const promoted = other(answers);
  if (promoted) return { role: promoted, reason: `the Sentinels name ${addr(promoted)} primary of ${o.master}: rejoining as its replica` };
  const waitMs = o.promotionWaitMs ?? DEFAULT_PROMOTION_WAIT_MS;
  log(
    `${name}: the Sentinels still name this node (${addr(self)}) primary of ${o.master}: waiting up to ${waitMs} ms for them to promote ` +
      'the replica rather than come back as a stale primary from its own append-only file',
  );
  const started = Date.now();
  const deadline = started + waitMs;
  while (Date.now() < deadline) {
    await sleep(POLL_MS, undefined, o.signal ? { signal: o.signal } : undefined);
    const now = other(await askSentinels(o.sentinelPorts, o.master));
    if (now) return { role: now, reason: `the Sentinels promoted ${addr(now)} after ${Date.now() - started} ms: rejoining ${o.master} as its replica` };
  }
  return {
    role: 'primary',
    reason:
      `NO replica of ${o.master} was promoted within ${waitMs} ms (is the replica down too?): starting as PRIMARY from its own ` +
      'append-only file; writes acknowledged by another node since its last sync, if any, are not in it',
  };
}
