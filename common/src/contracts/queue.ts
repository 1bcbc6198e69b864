/**
 * The score-event queues' contract: one BullMQ queue per shard, living on
 * that shard's Redis. Producers (leaderboard-service) and consumers
 * (worker-service, the helper scripts) agree through these definitions on
 * names, key prefix, job ids and payloads; the BullMQ connection settings and
 * retry policy they build their Queue/Worker with are platform/queue.ts.
 */
import { eventIdOf, SCORE_OPS, type ScoreEvent } from './events.js';
import { DEFAULT_KEY_PREFIX } from './keys.js';
import { TENANCY_ID } from './tenancy.js';

/** Queue name inside the shard's BullMQ prefix (no ':' allowed by BullMQ). */
export const SCORE_QUEUE = 'scores';
/** Job name of a score event. */
export const SCORE_JOB = 'score-event';

/**
 * BullMQ key prefix of a shard. It carries the shard's hash tag, so every
 * queue key sits in the same Redis Cluster slot as the shard's own keys.
 */
export function queuePrefix(shardId: string, keyPrefix: string = DEFAULT_KEY_PREFIX): string {
  return `${keyPrefix}:{${shardId}}:bull`;
}

/** The job id of an event: its event id, one per (project, board, period, player, version), so re-sends are deduplicated. */
export function jobIdOf(e: Pick<ScoreEvent, 'user_id' | 'version' | 'board' | 'period' | 'tenant' | 'project'>): string {
  return eventIdOf(e);
}

/**
 * A job's payload: one event, or an envelope of several events of the same
 * shard. The relay sends whatever accumulated while its previous enqueue was
 * in flight as one envelope, so under load a job carries many events and
 * BullMQ's fixed per-job cost (two scripts and a lock per job) is shared;
 * under light load every job is a single event.
 */
export type ScoreJobData = ScoreEvent | { events: ScoreEvent[] };

/** Payload and job id for a run of events (ids as `jobIdOf`, envelopes as `first+count`). */
export function scoreJob(events: readonly ScoreEvent[]): { data: ScoreJobData; jobId: string } {
  if (events.length === 1) return { data: events[0]!, jobId: jobIdOf(events[0]!) };
  return { data: { events: [...events] }, jobId: `${jobIdOf(events[0]!)}+${events.length}` };
}

/** Most events one envelope may carry (a bound on job size for the worker). */
export const MAX_EVENTS_PER_JOB = 1000;

/**
 * Reads a job payload: the valid events, and a description of each
 * malformed one (a malformed job fails at once as unrecoverable).
 */
export function readScoreJob(data: unknown): { events: ScoreEvent[]; problems: string[] } {
  const raw = data && typeof data === 'object' && Array.isArray((data as { events?: unknown }).events) ? ((data as { events: unknown[] }).events) : [data];
  if (raw.length === 0) return { events: [], problems: ['envelope has no events'] };
  if (raw.length > MAX_EVENTS_PER_JOB) return { events: [], problems: [`envelope has more than ${MAX_EVENTS_PER_JOB} events`] };
  const events: ScoreEvent[] = [];
  const problems: string[] = [];
  raw.forEach((e, i) => {
    const p = checkScoreEvent(e);
    if (p === undefined) events.push(e as ScoreEvent);
    else problems.push(raw.length > 1 ? `event ${i}: ${p}` : p);
  });
  return { events, problems };
}

/** A W3C trace context header, version 00: `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`. */
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** Checks a job payload; returns an error message for a malformed one. */
export function checkScoreEvent(data: unknown): string | undefined {
  if (!data || typeof data !== 'object') return 'event must be an object';
  const e = data as Record<string, unknown>;
  const str = (k: string, max: number) => typeof e[k] === 'string' && (e[k] as string).length > 0 && (e[k] as string).length <= max;
  if (Array.isArray(data)) return 'event must be an object';
  const int = (k: string) => typeof e[k] === 'number' && Number.isSafeInteger(e[k]);
  if (!str('user_id', 64) || !/^[A-Za-z0-9_.-]+$/.test(e.user_id as string)) return 'user_id is malformed';
  // At most 200 characters (code points): a string of at most 200 UTF-16 units has no more, so only a longer one is counted.
  if (typeof e.name !== 'string' || e.name.length === 0 || (e.name.length > 200 && [...e.name].length > 200)) return 'name is malformed';
  if (!str('region', 32)) return 'region is malformed';
  if (!(SCORE_OPS as readonly string[]).includes(e.op as string)) return 'op is malformed';
  for (const k of ['delta', 'score', 'version', 'ts']) if (!int(k)) return `${k} must be an integer`;
  if ((e.version as number) < 1) return 'version must be >= 1';
  if (typeof e.request_id !== 'string') return 'request_id must be a string';
  if (e.tenant !== undefined || e.project !== undefined) {
    if (typeof e.tenant !== 'string' || !TENANCY_ID.test(e.tenant)) return 'tenant is malformed';
    if (typeof e.project !== 'string' || !TENANCY_ID.test(e.project)) return 'project is malformed';
  }
  if (e.board !== undefined || e.period !== undefined) {
    if (typeof e.board !== 'string' || !/^[a-z0-9_-]{1,64}$/.test(e.board)) return 'board is malformed';
    if (typeof e.period !== 'string' || !/^[0-9A-Za-z:-]{1,32}$/.test(e.period)) return 'period is malformed';
  } else if ((e.score as number) < 0) {
    return 'score must be >= 0';
  }
  if (e.metadata !== undefined && (e.metadata === null || typeof e.metadata !== 'object' || Array.isArray(e.metadata))) return 'metadata must be an object';
  if (e.member !== undefined && (typeof e.member !== 'string' || e.member.length > 100)) return 'member is malformed';
  if (e.traceparent !== undefined && (typeof e.traceparent !== 'string' || !TRACEPARENT.test(e.traceparent))) return 'traceparent is malformed';
  return undefined;
}
