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
 * missed (connection lost, reconnected). node-redis re-subscribes before it
 * reports a reconnection ready.
 */
export function watchTopChanges(
  conn: ShardConnection,
  channel: string,
  log: Logger,
  onChange: (board: string) => void,
  onReset: () => void,
): TopChangeWatch {
  const sub = conn.client.duplicate();
  const shard = conn.shard.id;
  let subscribed = false;
  let closed = false;
  sub.on('error', (err: Error) => {
    log.debug('redis subscriber error', { shard, err: err.message });
    onReset();
  });
  sub.on('end', onReset);
  sub.on('ready', onReset);
  const start = async () => {
    await sub.connect();
    await sub.subscribe(channel, (board: string) => onChange(board));
    subscribed = true;
    onReset();
  };
  start().catch((e: unknown) => {
    if (!closed) log.warn('top-change subscription failed: top pages are read uncached', { shard, err: e as Error });
  });
  return {
    live: () => subscribed && sub.isReady,
    async close() {
      closed = true;
      try {
        await sub.close();
      } catch {
        try {
          sub.destroy();
        } catch {
          /* never connected */
        }
      }
    },
  };
}
