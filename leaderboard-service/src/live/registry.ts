/**
 * What the replicas share about live channels, in Redis, on the shard each
 * channel belongs to (channels.ts `channelShard`; keys in @lb/common keys.ts
 * `live`):
 *
 * - `members`: every replica's heartbeat. A shard's channels are dealt out
 *   among the replicas whose heartbeat is recent, by rendezvous hashing of
 *   the channel id, so each channel has one publisher and a replica that
 *   stops (or dies: its heartbeat ages out) hands only its own channels on.
 * - `channels` and `specs`: the channels that have (or just got) subscribers
 *   and what each shows. A subscription registers its channel; the
 *   publisher drops it once nchan reports no subscriber.
 * - `last:<channel>`: the hash of the content last published. Publishing
 *   goes through it (`SET ... GET`, one atomic step), so the same content
 *   is never published twice, whoever computed it: two replicas that both
 *   believe they publish a channel (while a heartbeat ages out, say)
 *   publish one message per change between them.
 */
import { decodeAnswer } from '../redis/contract.js';
import { SCRIPTS } from '../redis/scripts.js';
import type { ShardStore, ShardStores } from '../redis/shard-store.js';
import { parseSpec, type ChannelSpec } from './channels.js';

/** One shard's view at a heartbeat. */
export interface ShardView {
  /** Replicas publishing this shard's channels now (this one included). */
  readonly members: string[];
  /** Channels registered here. */
  readonly channels: string[];
}

export class LiveRegistry {
  constructor(private readonly stores: ShardStores) {}

  /** Registers a channel a subscriber is being sent to (or refreshes it): seen now. */
  async register(shard: string, channel: string, spec: ChannelSpec, now: number): Promise<void> {
    const s = this.stores.get(shard);
    const k = s.keys.live;
    await s.conn.call(() => s.client.multi().zAdd(k.channels, { score: now, value: channel }, { comparison: 'GT' }).hSet(k.specs, channel, JSON.stringify(spec)).exec(), true);
  }

  /**
   * This replica's heartbeat on a shard, and what the shard holds: the
   * members whose heartbeat is younger than `ttlMs` (older ones are removed)
   * and the channels registered.
   */
  async heartbeat(shard: string, member: string, now: number, ttlMs: number): Promise<ShardView> {
    const s = this.stores.get(shard);
    const k = s.keys.live;
    const [, , members, channels] = (await s.conn.call(
      () =>
        s.client
          .multi()
          .zAdd(k.members, { score: now, value: member })
          .zRemRangeByScore(k.members, '-inf', now - ttlMs)
          .zRange(k.members, 0, -1)
          .zRange(k.channels, 0, -1)
          .exec(),
      true,
    )) as unknown as [unknown, unknown, string[], string[]];
    return { members, channels };
  }

  /** Leaves a shard's members at once (a graceful stop): the others take its channels at their next heartbeat. */
  async leave(shard: string, member: string): Promise<void> {
    const s = this.stores.get(shard);
    await s.conn.call(() => s.client.zRem(s.keys.live.members, member), true);
  }

  /** What the channels show; undefined for one whose registration is gone. */
  async specs(shard: string, channels: readonly string[]): Promise<(ChannelSpec | undefined)[]> {
    if (channels.length === 0) return [];
    const s = this.stores.get(shard);
    const raw = await s.conn.call(() => s.client.hmGet(s.keys.live.specs, [...channels]));
    return raw.map((j) => parseSpec(j as string | null));
  }

  /** The channels were seen with subscribers now. */
  async seen(shard: string, channels: readonly string[], now: number): Promise<void> {
    if (channels.length === 0) return;
    const s = this.stores.get(shard);
    await s.conn.call(() => s.client.zAdd(s.keys.live.channels, channels.map((value) => ({ score: now, value })), { condition: 'XX', comparison: 'GT' }), true);
  }

  /** Drops an idle channel unless it was opened or seen after `cutoff` (ms epoch); true when dropped. */
  async drop(shard: string, channel: string, cutoff: number): Promise<boolean> {
    const s = this.stores.get(shard);
    const k = s.keys.live;
    const a = decodeAnswer('liveDrop', await s.conn.runScript(SCRIPTS.liveDrop, [k.channels, k.specs, k.last(channel)], [channel, String(cutoff)], true));
    return a.status === 'dropped';
  }

  /**
   * Records `hash` as the channel's content; true when it differs from the
   * last one recorded (the caller publishes it), false when that content was
   * published already. Kept for `ttlMs` after the last call.
   */
  async changed(shard: string, channel: string, hash: string, ttlMs: number): Promise<boolean> {
    const s = this.stores.get(shard);
    const before = await s.conn.call(() => s.client.set(s.keys.live.last(channel), hash, { expiration: { type: 'PX', value: ttlMs }, GET: true }), true);
    return before !== hash;
  }

  /** Forgets the recorded content (its publication failed), so the next computation publishes. */
  async forget(shard: string, channel: string): Promise<void> {
    const s = this.stores.get(shard);
    await s.conn.call(() => s.client.del(s.keys.live.last(channel)), true);
  }

  /** Releases that claim (the first message is published, or its publication failed). */
  async releaseFirst(shard: string, channel: string): Promise<void> {
    const s = this.stores.get(shard);
    await s.conn.call(() => s.client.del(s.keys.live.first(channel)), true);
  }

  /** Claims the publication of a channel's first message for `ms` (at most); false when another replica has it. */
  async claimFirst(shard: string, channel: string, ms: number): Promise<boolean> {
    const s = this.stores.get(shard);
    return (await s.conn.call(() => s.client.set(s.keys.live.first(channel), '1', { condition: 'NX', expiration: { type: 'PX', value: ms } }), true)) === 'OK';
  }

  /** The shards of the topology. */
  shards(): ShardStore[] {
    return this.stores.all();
  }
}
