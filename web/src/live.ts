/**
 * A Server-Sent Events stream that stays up: on any error the EventSource is
 * closed and a new one is opened after a backoff (250 ms doubling to 5 s),
 * with a URL computed afresh for each connection (the player's stream needs
 * a new ticket from POST /me/live-ticket every time: tickets expire).
 *
 * The browser's own reconnect is not relied on: after an HTTP error answer
 * (a 502 while a replica restarts, a 429 too_many_streams) an EventSource
 * gives up for good, and a ticket in its URL would be stale anyway.
 */

export type LiveState = 'connecting' | 'live' | 'retrying' | 'closed';

export interface LiveOptions<T> {
  /** The stream's URL for the next connection (may fetch a ticket; a rejection counts as a failed attempt). */
  url: () => Promise<string>;
  /** The SSE event name carrying the data (`top`, `card`). */
  event: string;
  onData: (data: T, lastEventId: string) => void;
  onState?: (state: LiveState, detail?: string) => void;
}

const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 5000;

export class LiveStream<T> {
  private source: EventSource | undefined;
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
