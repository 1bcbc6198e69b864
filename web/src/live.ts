/**
 * A Server-Sent Events stream that stays up: on any error the EventSource is
 * closed and a new one is opened after a backoff (250 ms doubling to 5 s),
 * with a URL computed afresh for each connection (the player's stream needs
 * a new ticket from POST /me/live-ticket every time: tickets expire).
 *
 * The browser's own reconnect is not relied on: after an HTTP error answer
 * (a 502 while a replica restarts, a 429 too_many_streams) an EventSource
 * gives up for good, and a ticket in its URL would be stale anyway.
 *
 * With `headers` the stream is read with fetch() (sse.ts) instead, to send
 * an API key as `X-Api-Key` (the tenant console's admin key, which must not
 * go in a URL); an answer that retrying cannot change (400, 401, 403, 404)
 * then ends it as `failed`, with the error.
 */
import { ApiError } from './api.js';
import { fetchEventStream } from './sse.js';

export type LiveState = 'connecting' | 'live' | 'retrying' | 'closed' | 'failed';

export interface LiveOptions<T> {
  /** The stream's URL for the next connection (may fetch a ticket; a rejection counts as a failed attempt). */
  url: () => Promise<string>;
  /** The SSE event name carrying the data (`top`, `card`). */
  event: string;
  onData: (data: T, lastEventId: string) => void;
  /** `failed` (fetch transport only) comes with the {@link ApiError} that ended the stream. */
  onState?: (state: LiveState, detail?: string, error?: ApiError) => void;
  /** Request headers: the stream is read with fetch() instead of EventSource (which cannot send any). */
  headers?: () => Record<string, string>;
}

/** Answers that a retry would only repeat. */
const FINAL_STATUSES = new Set([400, 401, 403, 404]);

const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 5000;

export class LiveStream<T> {
  /** Closes the current connection (EventSource or fetch). */
  private source: { close(): void } | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private backoff = MIN_BACKOFF_MS;
  private stopped = false;
  /** Bumped on each open and on close: callbacks of an older connection are ignored. */
  private generation = 0;

  constructor(private readonly opts: LiveOptions<T>) {}

  start(): this {
    void this.open();
    return this;
  }

  /** Closes the stream for good. */
  close(): void {
    this.stopped = true;
    this.generation++;
    clearTimeout(this.timer);
    this.source?.close();
    this.source = undefined;
    this.opts.onState?.('closed');
  }

  private async open(): Promise<void> {
    const gen = ++this.generation;
    this.opts.onState?.('connecting');
    let url: string;
    try {
      url = await this.opts.url();
    } catch (e) {
      if (gen === this.generation) this.retry(gen, (e as Error).message);
      return;
    }
    if (gen !== this.generation || this.stopped) return;
    if (this.opts.headers) {
      this.openFetch(gen, url, this.opts.headers());
      return;
    }
    const source = new EventSource(url);
    this.source = source;
    source.addEventListener('open', () => {
      if (gen === this.generation) this.opts.onState?.('live');
    });
    source.addEventListener(this.opts.event, (e) => {
      if (gen !== this.generation) return;
      const m = e as MessageEvent<string>;
      let data: T;
      try {
        data = JSON.parse(m.data) as T;
      } catch {
        return;
      }
      this.backoff = MIN_BACKOFF_MS;
      this.opts.onState?.('live');
      this.opts.onData(data, m.lastEventId);
    });
    source.addEventListener('error', () => {
      if (gen !== this.generation) return;
      source.close();
      this.retry(gen, 'connection lost');
    });
  }

  private openFetch(gen: number, url: string, headers: Record<string, string>): void {
    const close = fetchEventStream(url, headers, {
      onOpen: () => {
        if (gen === this.generation) this.opts.onState?.('live');
      },
      onEvent: (name, raw, id) => {
        if (gen !== this.generation || name !== this.opts.event) return;
        let data: T;
        try {
          data = JSON.parse(raw) as T;
        } catch {
          return;
        }
        this.backoff = MIN_BACKOFF_MS;
        this.opts.onState?.('live');
        this.opts.onData(data, id);
      },
      onEnd: (e) => {
        if (gen !== this.generation) return;
        if (e instanceof ApiError && FINAL_STATUSES.has(e.status)) {
          this.stopped = true;
          this.source = undefined;
          this.opts.onState?.('failed', e.message, e);
          return;
        }
        this.retry(gen, e instanceof ApiError && e.code !== 'network' ? e.message : 'connection lost');
      },
    });
    this.source = { close };
  }

  private retry(gen: number, why: string): void {
    if (this.stopped || gen !== this.generation) return;
    this.source?.close();
    this.source = undefined;
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
    this.opts.onState?.('retrying', `${why}; reconnecting in ${(wait / 1000).toFixed(wait < 1000 ? 2 : 0)} s`);
    this.timer = setTimeout(() => void this.open(), wait);
  }
}
