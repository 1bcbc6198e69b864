/**
 * Live pushes: the replicas compute what each live channel shows and
 * publish it to nchan (nginx's push module), which holds the subscribers
 * and writes the SSE frames (see nchan.ts, and docs/ARCHITECTURE.md "Live
 * pushes").
 *
 * One publisher per channel. Each shard keeps the replicas' heartbeats and
 * its channels' registrations (registry.ts); every replica reads both at
 * each heartbeat and publishes the channels that rendezvous hashing of the
 * channel id over the live members gives it. Only a serving replica is a
 * member ({@link LiveChannels.start}, once its server listens): a process
 * that holds the same deps without serving is none. A change reaches every
 * replica (the top-page cache's subscriptions to the shards' top-changed
 * channels, {@link TopPages.watch}), and only the channel's publisher acts
 * on it: one computation and at most one publication per change, whatever
 * the number of replicas or watchers. A replica that stops leaves the
 * members at once; one that dies ages out within {@link memberTtlMs}; the
 * replica that gets a channel computes it at once, so a change made
 * meanwhile is published late, never lost. While two replicas both believe
 * they publish a channel (members seen at different moments) the content
 * hash in Redis (registry.ts `changed`) lets one message through per
 * content.
 *
 * Coalescing, per channel: at most one computation per
 * {@link MIN_INTERVAL_MS} after the last one started or was published (at
 * most 5 events a second); a change arriving meanwhile marks the channel
 * dirty and is computed when the interval ends, so the last change is
 * never lost. A computation publishes only when the content changed.
 * Cards are computed at every heartbeat too (a player below the first 100
 * rows can be overtaken without any message), and so are tops whose
 * change messages cannot arrive (the cache off, a subscription down).
 *
 * Idle channels: nchan's answer to a publication says how many subscribers
 * got it; a channel nobody published for {@link LiveChannels.idleMs} (10
 * heartbeats) is asked. One without subscribers, opened or last seen with
 * some more than that ago, is dropped from the registry and no longer
 * computed (a subscriber arriving later registers it again).
 */
import { createHash } from 'node:crypto';
import { AppError, rendezvous, type ProjectRef, type ShardRouter } from '@lb/common/contracts';
import type { Logger } from '@lb/common/platform';
import type { TopPages } from '../leaderboard/top-cache.js';
import { changeNames, channelId, channelShard, eventName, streamKind, type ChannelSpec, type StreamKind } from './channels.js';
import type { ChannelInfo, NchanClient } from './nchan.js';
import type { LiveRegistry, ShardView } from './registry.js';

/** Least time between two computations of a channel, ms (at most 5 events a second). */
export const MIN_INTERVAL_MS = 200;
/** How long a channel's last content hash is kept after it was last computed, ms: at least nchan_message_timeout (1 h). */
const LAST_TTL_MS = 2 * 3600_000;
/** How long one replica may hold the publication of a new channel's first message, ms (it releases it once published). */
const FIRST_CLAIM_MS = 2000;
/**
 * nchan keeps a message this long (`nchan_message_timeout 1h` in
 * nginx/nginx.conf.template); a Last-Event-ID whose message is older than
 * this minus a margin is not passed on (see {@link LiveChannels.open}).
 */
const MESSAGE_TIMEOUT_S = 3600;
const RESUME_MARGIN_S = 300;
/** A stream of a period that ends within this time is not resumed by id: the channel is about to be deleted. */
const PERIOD_END_MARGIN_MS = 5000;
/** nchan's message ids: `<unix seconds>:<tag>`, one tag (a single-channel subscriber). */
const MESSAGE_ID = /^[1-9][0-9]{0,11}:[0-9]{1,5}$/;

/** What a channel shows, computed once per change for all its subscribers. */
export interface Payload {
  /** The event's data, without `at` (added when it is published). */
  body: Record<string, unknown>;
  /** The text whose hash says whether the content changed (the rows of a top; the whole card). */
  identity: string;
}

/** Per-replica counts for Prometheus (`lb_live_channels{kind}`, `lb_live_publications_total{kind}`). */
export interface LiveCounters {
  /** Channels this replica publishes, by kind. */
  channels(kind: StreamKind, delta: number): void;
  /** One message published to nchan. */
  published(kind: StreamKind): void;
}

export interface LiveOptions {
  /** This replica among the publishers: unique per process (an instance id and a random suffix). */
  member: string;
  /** Heartbeat, card and fallback refresh period, ms (LIVE_REFRESH_MS). */
  refreshMs: number;
  log: Logger;
  counters?: LiveCounters | undefined;
  /** What periods' ends are decided by (the service's clock). */
  clock?: () => number;
}

export interface LiveDeps {
  changes: TopPages;
  registry: LiveRegistry;
  nchan: NchanClient;
  router: ShardRouter;
  /** What a channel shows now. */
  compute(spec: ChannelSpec): Promise<Payload>;
  /** A message reached `n` subscribers of a project's channel (usage metering: events delivered). */
  delivered?(project: ProjectRef, n: number): void;
}

/** Where a subscriber goes: the channel, and the message id it resumes after (only an id nchan holds now). */
export interface Subscription {
  readonly channel: string;
  readonly lastMessageId: string | undefined;
}

const hashOf = (p: Payload): string => createHash('sha1').update(p.identity).digest('base64');
const dataOf = (p: Payload): string => JSON.stringify({ ...p.body, at: Date.now() });

/** A channel this replica publishes. */
class Channel {
  readonly kind: StreamKind;
  readonly names: readonly string[];
  /** performance.now() of the last time nchan told its subscribers (a publication's answer or a check). */
  heardAt = performance.now();
  /** performance.now() of the last time it was recorded as seen with subscribers. */
  seenAt = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private endTimer: NodeJS.Timeout | undefined;
  private running = false;
  private dirty = false;
  private lastStart = -Infinity;
  private lastSent = -Infinity;
  closed = false;

  constructor(
    readonly id: string,
    readonly shard: string,
    readonly spec: ChannelSpec,
    private readonly live: LiveChannels,
  ) {
    this.kind = streamKind(spec);
    this.names = changeNames(spec);
    if (spec.kind !== 'live' && spec.endsAt !== undefined) this.armEnd(spec.endsAt);
  }

  private armEnd(endsAt: number): void {
    // Timers hold 32-bit delays: a far end (a monthly period) is armed again on the way.
    const clock = this.live.clock;
    const delay = Math.min(Math.max(0, endsAt - clock()) + 50, 2 ** 31 - 1);
    this.endTimer = setTimeout(() => (clock() >= endsAt ? void this.live.end(this) : this.armEnd(endsAt)), delay);
  }

  /** Something the channel shows may have changed: compute it again (coalesced). */
  changed(): void {
    if (this.closed) return;
    this.dirty = true;
    if (this.running || this.timer !== undefined) return;
    const wait = Math.max(0, Math.max(this.lastStart, this.lastSent) + MIN_INTERVAL_MS - performance.now());
    this.timer = setTimeout(() => void this.run(), wait);
  }

  private async run(): Promise<void> {
    this.timer = undefined;
    this.running = true;
    this.dirty = false;
    this.lastStart = performance.now();
    try {
      const info = await this.live.publishIfChanged(this.shard, this.id, this.spec);
      if (info !== undefined) {
        this.lastSent = performance.now();
        await this.live.heard(this, info);
      }
    } catch (e) {
      if (e instanceof AppError && e.status === 404) {
        // The board is gone: its streams end.
        await this.live.end(this);
        return;
      }
      // A shard or nchan down: subscribers keep what they have; try again later.
      this.live.log.debug('live channel could not be published', { channel: this.id, err: e as Error });
      this.lastStart = performance.now() + this.live.refreshMs - MIN_INTERVAL_MS;
      this.dirty = true;
    } finally {
      this.running = false;
      if (this.dirty) this.changed();
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.endTimer);
  }
}

export class LiveChannels {
  /** The channels this replica publishes, by id. */
  private readonly owned = new Map<string, Channel>();
  /** Owned channels by the top-changed names they follow. */
  private readonly byName = new Map<string, Set<Channel>>();
  /** Each shard's members and channels at the last heartbeat that reached it. */
  private readonly views = new Map<string, ShardView>();
  private readonly counts: Record<StreamKind, number> = { top: 0, me: 0 };
  /** Set by {@link start}: this process is one of the publishers. */
  private unwatch: (() => void) | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private closing = false;
  readonly log: Logger;
  readonly refreshMs: number;
  readonly clock: () => number;
  /** A member whose heartbeat is older than this has left: its channels go to the others, ms. */
  readonly memberTtlMs: number;
  /**
   * A channel neither published nor asked within this time is asked for
   * its subscribers; one opened or seen with subscribers within it is never
   * dropped (a subscriber redirected to it may still be on its way to
   * nchan), ms.
   */
  readonly idleMs: number;

  constructor(
    private readonly deps: LiveDeps,
    private readonly o: LiveOptions,
  ) {
    this.log = o.log;
    this.refreshMs = o.refreshMs;
    this.clock = o.clock ?? Date.now;
    this.memberTtlMs = 3 * o.refreshMs;
    this.idleMs = 10 * o.refreshMs;
  }

  /**
   * Joins the publishers: heartbeats on every shard, takes the channels
   * rendezvous hashing gives this member, follows the changes. Called once
   * the replica serves (app.ts `buildServer`, when its server listens),
   * never by a process that only holds the deps (a bench seeding and
   * reading, a script): a member takes its share of every shard's channels,
   * and one whose nchan is not the stack's (LIVE_PUBLISH_URL left as it
   * was) or that serves no subscription would leave its share unpublished
   * after their first message.
   */
  start(): void {
    if (this.closing || this.ticker !== undefined) return;
    this.unwatch = this.deps.changes.watch({
      change: (name) => {
        for (const c of this.byName.get(name) ?? []) c.changed();
      },
      // Messages may have been missed: every channel looks again.
      reset: () => {
        for (const c of this.owned.values()) c.changed();
      },
    });
    this.ticker = setInterval(() => {
      this.ticking ??= this.tick().finally(() => (this.ticking = undefined));
    }, this.refreshMs);
    this.ticker.unref();
    this.ticking = this.tick().finally(() => (this.ticking = undefined));
  }

  /** Channels this replica publishes, by kind (GET /health). */
  channels(): Record<StreamKind, number> {
    return { ...this.counts };
  }

  /** This process among the publishers (the name of its heartbeat in `live:members`). */
  get member(): string {
    return this.o.member;
  }

  /** True when this replica publishes `channel` now. */
  publishes(channel: string): boolean {
    return this.owned.has(channel);
  }

  /**
   * Prepares a subscription to the channel of `spec`: registers it (so its
   * publisher knows of it), publishes its first message when nchan has none
   * (a channel nobody watched, or whose message expired), and decides the
   * message id nchan resumes from. Only an id nchan holds as the channel's
   * current message is passed on: any other (junk, a stale id, the forms
   * nchan 1.3.6 crashes on) is dropped here, and the subscriber gets the
   * current message at once.
   *
   * @param lastEventId the client's Last-Event-ID (header or `last_event_id`), unchecked
   */
  async open(spec: ChannelSpec, lastEventId: string | undefined): Promise<Subscription> {
    const channel = channelId(spec);
    const shard = channelShard(this.deps.router, spec);
    // The registry's times are the wall clock, the same on every replica (the period clock may be a test's).
    const now = Date.now();
    await this.deps.registry.register(shard, channel, spec, now);
    const info = await this.deps.nchan.info(channel);
    if (info === undefined || info.messages === 0) {
      // Concurrent first subscribers on several replicas: one publishes, the others' subscribers wait for its message.
      if (await this.deps.registry.claimFirst(shard, channel, FIRST_CLAIM_MS)) {
        try {
          await this.publishFirst(shard, channel, spec);
        } finally {
          await this.deps.registry.releaseFirst(shard, channel).catch(() => {});
        }
      }
      this.adoptIfMine(shard, channel, spec);
      return { channel, lastMessageId: undefined };
    }
    this.adoptIfMine(shard, channel, spec);
    return { channel, lastMessageId: resumable(lastEventId, info, spec, this.clock()) ? lastEventId : undefined };
  }

  /** Graceful stop: leaves the members (the others take the channels at once), stops computing. */
  async close(): Promise<void> {
    this.closing = true;
    const member = this.ticker !== undefined;
    clearInterval(this.ticker);
    this.unwatch?.();
    for (const c of [...this.owned.values()]) this.forget(c);
    await this.ticking;
    if (member)
      await Promise.all(this.deps.registry.shards().map((s) => this.deps.registry.leave(s.shard.id, this.o.member).catch(() => {})));
    this.deps.nchan.close();
  }

  /** Computes a channel and publishes it if its content changed; nchan's answer, or undefined when nothing was published. */
  async publishIfChanged(shard: string, channel: string, spec: ChannelSpec): Promise<ChannelInfo | undefined> {
    const p = await this.deps.compute(spec);
    if (!(await this.deps.registry.changed(shard, channel, hashOf(p), LAST_TTL_MS))) return undefined;
    return this.publish(shard, channel, spec, p);
  }

  /**
   * Publishes a new channel's first message. The content recorded as
   * published may be stale (nginx restarted, or the message expired): it is
   * published anyway unless nchan got a message meanwhile (its publisher
   * published this content first).
   */
  private async publishFirst(shard: string, channel: string, spec: ChannelSpec): Promise<void> {
    const p = await this.deps.compute(spec);
    if (!(await this.deps.registry.changed(shard, channel, hashOf(p), LAST_TTL_MS))) {
      const now = await this.deps.nchan.info(channel);
      if (now !== undefined && now.messages > 0) return;
    }
    await this.publish(shard, channel, spec, p);
  }

  private async publish(shard: string, channel: string, spec: ChannelSpec, p: Payload): Promise<ChannelInfo> {
    try {
      const info = await this.deps.nchan.publish(channel, eventName(spec), dataOf(p));
      this.o.counters?.published(streamKind(spec));
      this.deps.delivered?.(spec.project, info.subscribers);
      return info;
    } catch (e) {
      // Not published: the next computation must not take it for done.
      await this.deps.registry.forget(shard, channel).catch(() => {});
      throw e;
    }
  }

  /** nchan said how many subscribers a channel has: it stays, or is dropped when idle. */
  async heard(c: Channel, info: ChannelInfo): Promise<void> {
    c.heardAt = performance.now();
    if (info.subscribers > 0) {
      // Recorded at most every idleMs / 2: the registration only needs to be younger than the grace.
      if (c.heardAt - c.seenAt < this.idleMs / 2) return;
      c.seenAt = c.heardAt;
      await this.deps.registry.seen(c.shard, [c.id], Date.now());
      return;
    }
    if (await this.deps.registry.drop(c.shard, c.id, Date.now() - this.idleMs)) this.forget(c);
  }

  /** A channel whose period is over (or whose board is gone): its streams end, its registration goes. */
  async end(c: Channel): Promise<void> {
    this.forget(c);
    try {
      await this.deps.nchan.remove(c.id);
      await this.deps.registry.drop(c.shard, c.id, Infinity);
    } catch (e) {
      this.log.debug('live channel could not be ended', { channel: c.id, err: e as Error });
    }
  }

  /** One heartbeat: every shard's members and channels, then the channels due for a computation or a check. */
  private async tick(): Promise<void> {
    if (this.closing) return;
    const now = Date.now();
    await Promise.all(
      this.deps.registry.shards().map(async (s) => {
        try {
          const view = await this.deps.registry.heartbeat(s.shard.id, this.o.member, now, this.memberTtlMs);
          this.views.set(s.shard.id, view);
          await this.sync(s.shard.id, view);
        } catch (e) {
          // The shard is down: its channels stay as they were (they cannot be computed anyway).
          this.log.debug('live heartbeat failed', { shard: s.shard.id, err: e as Error });
        }
      }),
    );
    const t = performance.now();
    for (const c of this.owned.values()) {
      if (c.spec.kind === 'card' || !c.names.every((n) => this.deps.changes.liveFor(n))) c.changed();
      if (t - c.heardAt > this.idleMs) void this.check(c);
    }
  }

  /** Asks nchan how many subscribers a channel has. */
  private async check(c: Channel): Promise<void> {
    c.heardAt = performance.now();
    try {
      const info = await this.deps.nchan.info(c.id);
      if (!c.closed) await this.heard(c, info ?? { messages: 0, subscribers: 0, lastMessageId: '' });
    } catch (e) {
      this.log.debug('live channel check failed', { channel: c.id, err: e as Error });
    }
  }

  /** Takes the shard's channels that are this replica's now, and lets go of those that are not. */
  private async sync(shard: string, view: ShardView): Promise<void> {
    const mine = new Set(view.channels.filter((id) => rendezvous(id, view.members) === this.o.member));
    for (const c of [...this.owned.values()]) if (c.shard === shard && !mine.has(c.id)) this.forget(c);
    const fresh = [...mine].filter((id) => !this.owned.has(id));
    const specs = await this.deps.registry.specs(shard, fresh);
    fresh.forEach((id, i) => {
      const spec = specs[i];
      if (spec !== undefined && !this.closing) this.adopt(shard, id, spec);
    });
  }

  /** A channel just registered by a subscription here: published from here at once if this replica is its publisher. */
  private adoptIfMine(shard: string, channel: string, spec: ChannelSpec): void {
    const view = this.views.get(shard);
    if (view !== undefined && !this.owned.has(channel) && rendezvous(channel, view.members) === this.o.member) this.adopt(shard, channel, spec);
  }

  private adopt(shard: string, channel: string, spec: ChannelSpec): void {
    if (this.closing || this.owned.has(channel)) return;
    const c = new Channel(channel, shard, spec, this);
    this.owned.set(channel, c);
    for (const n of c.names) {
      let set = this.byName.get(n);
      if (set === undefined) this.byName.set(n, (set = new Set()));
      set.add(c);
    }
    this.counts[c.kind]++;
    this.o.counters?.channels(c.kind, 1);
    // A channel taken over (its publisher left) may have missed changes: computed at once (published only if it differs).
    c.changed();
  }

  private forget(c: Channel): void {
    if (c.closed || this.owned.get(c.id) !== c) return;
    c.close();
    this.owned.delete(c.id);
    for (const n of c.names) {
      const set = this.byName.get(n);
      set?.delete(c);
      if (set?.size === 0) this.byName.delete(n);
    }
    this.counts[c.kind]--;
    this.o.counters?.channels(c.kind, -1);
  }
}

/**
 * True when a client's Last-Event-ID may be passed on to nchan: nchan's id
 * of the channel's current message, exactly, and that message is not
 * about to expire nor its channel about to be deleted (an id nchan no
 * longer holds on an empty channel is what crashes nchan 1.3.6's
 * workers; an id older than the message it holds is safe: it gets that
 * message).
 */
function resumable(id: string | undefined, info: ChannelInfo, spec: ChannelSpec, now: number): id is string {
  if (id === undefined || !MESSAGE_ID.test(id) || id !== info.lastMessageId) return false;
  // nchan's ids carry nginx's clock: compared with the wall clock, not the service's period clock.
  const ageS = Date.now() / 1000 - Number(id.slice(0, id.indexOf(':')));
  if (ageS > MESSAGE_TIMEOUT_S - RESUME_MARGIN_S) return false;
  return spec.kind === 'live' || spec.endsAt === undefined || spec.endsAt - now > PERIOD_END_MARGIN_MS;
}
