/**
 * A shard's top-changed channel, followed on a connection of its own (a
 * subscribed connection can send nothing else). The write and restore
 * scripts publish the name of each board whose first entries they changed.
 */
import type { Logger } from '@lb/common/platform';
import type { ShardConnection } from './connection.js';

/** A subscription made by {@link watchTopChanges}. */
export interface TopChangeWatch {
  /** Subscribed and connected: every change published from now on arrives. */
  live(): boolean;
  close(): Promise<void>;
}

/**
 * Follows `channel` on the shard of `conn`. `onChange` gets the name of
 * each board a write changed; `onReset` runs whenever messages may have been
 * missed (connection lost, reconnected, the shard's primary replaced by a
 * failover: the promoted replica may lack a write whose change was
 * published). node-redis re-subscribes before it reports a reconnection
 * ready, and its Sentinel client moves the subscription to the new primary.
 */
export function watchTopChanges(
  conn: ShardConnection,
  channel: string,
  log: Logger,
  onChange: (board: string) => void,
  onReset: () => void,
): TopChangeWatch {
  const sub = conn.redis.duplicate();
  const shard = conn.shard.id;
  let subscribed = false;
  let closed = false;
  sub.on('error', (err: Error) => {
    log.debug('redis subscriber error', { shard, err: err.message });
    onReset();
  });
  sub.on('end', onReset);
  sub.on('ready', onReset);
  sub.onPrimaryChange(onReset);
  conn.redis.onPrimaryChange(onReset);
  const start = async () => {
    await sub.connect();
    await sub.client.subscribe(channel, (board: string) => onChange(board));
    subscribed = true;
    onReset();
  };
  start().catch((e: unknown) => {
    if (!closed) log.warn('top-change subscription failed: top pages are read uncached', { shard, err: e as Error });
  });
  return {
    live: () => subscribed && sub.usable && sub.client.isReady,
    async close() {
      closed = true;
      await sub.close();
    },
  };
}
