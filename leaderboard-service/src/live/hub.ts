/**
 * Live pushes (Server-Sent Events): a board's top N (`GET /live`,
 * `GET /boards/:id/live`) and a player's own card (`GET /me/live`).
 *
 * Fan-out does not grow with the number of watchers: streams watching the
 * same thing (a board, period, view and limit; a player's card on a board)
 * share one {@link Topic}. A topic computes its payload once per change,
 * serialises it once and writes the same bytes to each of its streams.
 *
 * Changes are learnt from the top-page cache's own subscriptions to the
 * shards' top-changed channels ({@link TopPages.watch}), after the cache has
 * dropped the board: the read a topic makes then loads the new rows (the
 * write script published from inside its atomic step, so Redis already has
 * them). Where no message can arrive (the cache is off, a shard's
 * subscription is down) topics poll every `refreshMs`; cards always do too,
 * since a player below the first 100 rows can be overtaken without any
 * message.
 *
 * Coalescing: a topic computes at most once per {@link MIN_INTERVAL_MS}
 * after its last event, so a stream gets at most 5 events a second; a
 * change that arrives meanwhile is never lost (the topic recomputes once the
 * interval is over). A topic sends only when its content changed: event ids
 * are derived from the content (`<period or ->.<16 hex of sha1>`), so any
 * replica can honour a reconnecting client's Last-Event-ID.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '@lb/common/platform';
import type { TopPages } from '../leaderboard/top-cache.js';

export type StreamKind = 'top' | 'me';

/** Least time between two events of a stream, ms (at most 5 a second). */
export const MIN_INTERVAL_MS = 200;
/** A stream whose client does not read (this many bytes waiting) is closed: it reconnects and starts afresh. */
const MAX_BUFFERED_BYTES = 1 << 20;

/** What a topic pushes, computed once per change for all its streams. */
export interface Payload {
  /** The event's data, without `at` (added when it is sent). */
  body: Record<string, unknown>;
  /** The text the event id is derived from (the rows of a top; the whole card). */
  identity: string;
}

/** What the streams of one topic watch. */
export interface TopicSpec {
  /** Streams with equal keys share a topic. */
  readonly key: string;
  readonly kind: StreamKind;
  /** SSE event name. */
  readonly event: 'top' | 'card';
  /** The period (event id prefix); null for the board main. */
  readonly period: string | null;
  /** Top-changed names (`GLOBAL`, `EU`, `<board>/<period>/<view>`) that make the topic recompute. */
  readonly channels: readonly string[];
  /** Recompute every `refreshMs` even without a message (cards). */
  readonly poll: boolean;
  /** When the watched period ends (epoch ms): its streams are ended, so clients reconnect to the next one. */
  readonly endsAt?: number | undefined;
  compute(): Promise<Payload>;
}

/** Per-replica counts for Prometheus (`lb_live_streams{kind}`, `lb_live_events_total{kind}`). */
export interface LiveCounters {
  streams(kind: StreamKind, delta: number): void;
  /** `n` events written (one per stream). */
  events(kind: StreamKind, n: number): void;
}

export interface LiveHubOptions {
  /** Between heartbeat comments (`: hb`), ms. */
  heartbeatMs: number;
  /** The `retry:` the streams announce (the client's reconnection delay), ms. */
  retryMs: number;
  /** Cards, and topics whose changes cannot arrive, are recomputed this often, ms. */
  refreshMs: number;
  log: Logger;
  counters?: LiveCounters | undefined;
  /** What periods' ends are decided by (the service's clock). */
  clock?: () => number;
}

/** The content-derived event id. */
export function eventId(period: string | null, identity: string): string {
  return `${period ?? '-'}.${createHash('sha1').update(identity).digest('hex').slice(0, 16)}`;
}

/** One open SSE response. */
class Stream {
  constructor(
    readonly res: ServerResponse,
    /** The reconnecting client's Last-Event-ID: the first event is skipped when it has this id. */
    public skipId: string | undefined,
  ) {}

  write(bytes: Buffer | string): void {
    if (this.res.destroyed || this.res.writableEnded) return;
    if (this.res.writableLength > MAX_BUFFERED_BYTES) {
      this.res.destroy();
      return;
    }
    this.res.write(bytes);
  }
}

class Topic {
  readonly streams = new Set<Stream>();
  private current: { id: string; bytes: Buffer } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private endTimer: NodeJS.Timeout | undefined;
  private running = false;
  private dirty = false;
  private lastStart = -Infinity;
  private lastSent = -Infinity;
  private closed = false;

  constructor(
    readonly spec: TopicSpec,
    private readonly hub: LiveHub,
  ) {
    if (spec.endsAt !== undefined) this.armEnd(spec.endsAt);
  }

  private armEnd(endsAt: number): void {
    // Timers hold 32-bit delays: a far end (a monthly period) is armed again on the way.
    const clock = this.hub.clock;
    const delay = Math.min(Math.max(0, endsAt - clock()) + 50, 2 ** 31 - 1);
    this.endTimer = setTimeout(() => (clock() >= endsAt ? this.endAll() : this.armEnd(endsAt)), delay);
  }

  add(s: Stream): void {
    this.streams.add(s);
    if (this.current) this.hub.counted(this.spec.kind, this.deliver(s, this.current) ? 1 : 0);
    else this.changed();
  }

  /** Something the topic shows may have changed: recompute (coalesced). */
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
      const p = await this.spec.compute();
      const id = eventId(this.spec.period, p.identity);
      if (!this.closed && id !== this.current?.id) {
        const data = JSON.stringify({ ...p.body, at: Date.now() });
        this.current = { id, bytes: Buffer.from(`id: ${id}\nevent: ${this.spec.event}\ndata: ${data}\n\n`) };
        this.lastSent = performance.now();
        let written = 0;
        for (const s of this.streams) if (this.deliver(s, this.current)) written++;
        // Counted once per change, not once per stream: fan-out is the hot path here.
        this.hub.counted(this.spec.kind, written);
      }
    } catch (e) {
      // A shard down: the streams keep what they have; try again later.
      this.hub.log.debug('live topic could not be computed', { topic: this.spec.key, err: e as Error });
      this.lastStart = performance.now() + this.hub.refreshMs - MIN_INTERVAL_MS;
      this.dirty = true;
    } finally {
      this.running = false;
      if (this.dirty) this.changed();
    }
  }

  /** Writes the event to one stream; false when it is skipped (the client's Last-Event-ID). */
  private deliver(s: Stream, cur: { id: string; bytes: Buffer }): boolean {
    if (s.skipId !== undefined) {
      const skip = s.skipId === cur.id;
      s.skipId = undefined;
      if (skip) return false;
    }
    s.write(cur.bytes);
    return true;
  }

  /** The watched period is over: end every stream (the clients reconnect to the current one). */
  endAll(): void {
    for (const s of [...this.streams]) s.res.end();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.endTimer);
  }
}

export class LiveHub {
  private readonly topics = new Map<string, Topic>();
  /** Topics by the change names they follow. */
  private readonly byChannel = new Map<string, Set<Topic>>();
  private readonly counts: Record<StreamKind, number> = { top: 0, me: 0 };
  private readonly unwatch: () => void;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly refresh: NodeJS.Timeout;
  private static readonly HEARTBEAT = Buffer.from(': hb\n\n');
  readonly log: Logger;
  readonly refreshMs: number;
  readonly clock: () => number;
  private closing = false;

  constructor(
    changes: TopPages,
    private readonly o: LiveHubOptions,
  ) {
    this.log = o.log;
    this.refreshMs = o.refreshMs;
    this.clock = o.clock ?? Date.now;
    this.unwatch = changes.watch({
      change: (board) => {
        for (const t of this.byChannel.get(board) ?? []) t.changed();
      },
      // Messages may have been missed: every topic looks again.
      reset: () => {
        for (const t of this.topics.values()) t.changed();
      },
    });
    this.heartbeat = setInterval(() => {
      for (const t of this.topics.values()) for (const s of t.streams) s.write(LiveHub.HEARTBEAT);
    }, o.heartbeatMs);
    this.refresh = setInterval(() => {
      for (const t of this.topics.values()) if (t.spec.poll || !t.spec.channels.every((c) => changes.liveFor(c))) t.changed();
    }, o.refreshMs);
    this.heartbeat.unref();
    this.refresh.unref();
  }

  /** Open streams, by kind (GET /health). */
  streams(): Record<StreamKind, number> {
    return { ...this.counts };
  }

  /** Called by topics with the number of events they wrote to streams. */
  counted(kind: StreamKind, n: number): void {
    if (n > 0) this.o.counters?.events(kind, n);
  }

  /**
   * Turns `res` into an event stream of the topic `spec` describes: the
   * headers and `retry:` now, the current payload at once (unless it is the
   * client's Last-Event-ID), then each change, until the client leaves.
   */
  open(req: IncomingMessage, res: ServerResponse, spec: TopicSpec): void {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      'X-Accel-Buffering': 'no',
    });
    if (req.method === 'HEAD' || this.closing) {
      res.end();
      return;
    }
    req.socket.setNoDelay(true);
    res.write(`retry: ${this.o.retryMs}\n\n`);
    const last = req.headers['last-event-id'];
    const stream = new Stream(res, typeof last === 'string' && last !== '' ? last : undefined);
    let topic = this.topics.get(spec.key);
    if (topic === undefined) {
      topic = new Topic(spec, this);
      this.topics.set(spec.key, topic);
      for (const c of spec.channels) {
        let set = this.byChannel.get(c);
        if (set === undefined) this.byChannel.set(c, (set = new Set()));
        set.add(topic);
      }
    }
    const kind = spec.kind;
    this.counts[kind]++;
    this.o.counters?.streams(kind, 1);
    const t = topic;
    res.once('close', () => {
      this.counts[kind]--;
      this.o.counters?.streams(kind, -1);
      t.streams.delete(stream);
      if (t.streams.size === 0) this.drop(t);
    });
    t.add(stream);
  }

  private drop(t: Topic): void {
    t.close();
    if (this.topics.get(t.spec.key) === t) this.topics.delete(t.spec.key);
    for (const c of t.spec.channels) {
      const set = this.byChannel.get(c);
      set?.delete(t);
      if (set?.size === 0) this.byChannel.delete(c);
    }
  }

  /**
   * Graceful stop: ends every stream (their clients reconnect, through the
   * gateways, to another replica) and refuses new ones.
   */
  close(): void {
    this.closing = true;
    clearInterval(this.heartbeat);
    clearInterval(this.refresh);
    this.unwatch();
    for (const t of [...this.topics.values()]) t.endAll();
  }
}
