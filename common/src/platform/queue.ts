/**
 * BullMQ settings of the score-event queues (their names, job ids and
 * payloads are contracts/queue.ts): connection options and the retry policy
 * producers and consumers build their Queue/Worker with.
 *
 * BullMQ runs on ioredis: we share connection settings, never clients.
 */
import type { ConnectionOptions, DefaultJobOptions } from 'bullmq';
import type { RedisEndpoint } from '../contracts/topology.js';

/**
 * ioredis connection settings for a shard's Redis: host and port from a
 * redis:// URL, or ioredis' own Sentinel support (`sentinels` + `name`: it
 * asks the Sentinels for the primary, and `failoverDetector` follows
 * `+switch-master` at once instead of at the next reconnect).
 */
export function connectionFor(endpoint: RedisEndpoint, forWorker: boolean): ConnectionOptions {
  const common = {
    // Workers block on Redis and must retry forever. Producers give up after
    // one retry and a command timeout, so an enqueue never hangs on a dead
    // shard (the event stays in the outbox index for the next turn). BullMQ needs the
    // offline queue for its own start-up commands, so it stays on.
    maxRetriesPerRequest: forWorker ? null : 1,
    ...(forWorker ? {} : { commandTimeout: 3000 }),
  };
  if (endpoint.kind === 'sentinel') {
    return {
      ...common,
      sentinels: endpoint.sentinels.map((n) => ({ host: n.host, port: n.port })),
      name: endpoint.master,
      role: 'master',
      failoverDetector: true,
      sentinelRetryStrategy: (times: number) => Math.min(100 * times, 1000),
      retryStrategy: (times: number) => Math.min(50 * times, 1000),
      // A connection that finds itself on a demoted primary reconnects (and
      // so asks the Sentinels again) rather than failing every write.
      reconnectOnError: (err: Error) => err.message.startsWith('READONLY'),
    };
  }
  const u = new URL(endpoint.url);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  return {
    ...common,
    host: u.hostname,
    port: Number(u.port || 6379),
    db: Number.isInteger(db) ? db : 0,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    tls: u.protocol === 'rediss:' ? {} : undefined,
  };
}

/**
 * ioredis' error for a client that has ended for good: it no longer
 * reconnects by itself. Seen on BullMQ producers (Queue) after a few
 * Sentinel failovers, cause not found (our retryStrategy always retries);
 * their owners make the Queue again when they meet it.
 */
export function connectionEnded(err: unknown): boolean {
  return err instanceof Error && err.message === 'Connection is closed.';
}

export interface JobPolicy {
  attempts: number;
  backoffMs: number;
}

/**
 * Retry with exponential backoff; completed jobs are removed (bounded Redis
 * memory); failed jobs stay in the failed set, which is the dead-letter queue.
 */
export function scoreJobOptions(p: JobPolicy): DefaultJobOptions {
  return {
    attempts: p.attempts,
    backoff: { type: 'exponential', delay: p.backoffMs },
    removeOnComplete: true,
    removeOnFail: false,
  };
}
