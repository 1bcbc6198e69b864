/**
 * A Server-Sent Events client for tests, on node:http (no extra packages;
 * a connection may come from a source address of its own, as nginx's
 * per-address stream cap needs): {@link SseStream} is one connection,
 * parsed as the EventSource spec says (events end at a blank line; `:`
 * lines are comments; `retry:` sets the reconnection delay);
 * {@link ReconnectingSse} reconnects like a browser's EventSource, honouring
 * `retry:` and sending `Last-Event-ID`.
 */
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

export interface SseEvent {
  id: string | undefined;
  event: string;
  data: string;
  /** `performance.now()` when it arrived. */
  at: number;
}

/** The data of an event, parsed. */
export const dataOf = (e: SseEvent): any => JSON.parse(e.data);

type Waiter = { test: () => boolean; resolve: () => void };

/** One SSE connection. `events` and `comments` fill as they arrive. */
export class SseStream {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  retry: number | undefined;
  /** Set when the stream ended (cleanly, or `error` says how). */
  ended = false;
  error: Error | undefined;
  private readonly waiters = new Set<Waiter>();
  private lastId: string | undefined;

  private constructor(
    readonly status: number,
    readonly headers: Headers,
    private readonly req: http.ClientRequest,
  ) {}

  /**
   * Connects; resolves once the response headers are in. A non-200 answer
   * resolves too, with its body in `body` (parsed JSON when it is JSON).
   * `accept: null` sends no Accept header (curl's way); `localAddress` is
   * the connection's source address (127.0.0.x).
   */
  static async open(
    url: string,
    opts: { headers?: Record<string, string>; timeoutMs?: number; localAddress?: string; accept?: string | null } = {},
  ): Promise<SseStream & { body?: any }> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const accept = opts.accept === undefined ? 'text/event-stream' : opts.accept;
    const { req, res } = await new Promise<{ req: http.ClientRequest; res: http.IncomingMessage }>((resolve, reject) => {
      const req = http.get(url, { agent: false, headers: { ...(accept !== null && { accept }), ...opts.headers }, ...(opts.localAddress && { localAddress: opts.localAddress }) }, (res) => {
        clearTimeout(timer);
        resolve({ req, res });
      });
      const timer = setTimeout(() => req.destroy(new Error(`no answer headers from ${url} within ${timeoutMs} ms`)), timeoutMs);
      req.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    const headers = new Headers();
    for (const [k, v] of Object.entries(res.headers)) for (const x of Array.isArray(v) ? v : v === undefined ? [] : [v]) headers.append(k, x);
    const s = new SseStream(res.statusCode ?? 0, headers, req) as SseStream & { body?: any };
    if (s.status !== 200 || !(headers.get('content-type') ?? '').startsWith('text/event-stream')) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        s.body = JSON.parse(text);
      } catch {
        s.body = text;
      }
      s.ended = true;
      return s;
    }
    void s.read(res);
    return s;
  }

  private async read(body: AsyncIterable<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buf = '';
    let ev: { id?: string; event?: string; data: string[] } = { data: [] };
    try {
      for await (const chunk of body) {
        buf += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
          if (line === '') {
            if (ev.data.length > 0) {
              if (ev.id !== undefined) this.lastId = ev.id;
              this.events.push({ id: ev.id ?? this.lastId, event: ev.event ?? 'message', data: ev.data.join('\n'), at: performance.now() });
            }
            ev = { data: [] };
            this.wake();
            continue;
          }
          if (line.startsWith(':')) {
            this.comments.push(line.slice(1).trim());
            this.wake();
            continue;
          }
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? '' : line.slice(colon + 1);
          if (value.startsWith(' ')) value = value.slice(1);
          if (field === 'data') ev.data.push(value);
          else if (field === 'event') ev.event = value;
          else if (field === 'id') ev.id = value;
          else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
        }
      }
    } catch (e) {
      this.error = e as Error;
    }
    this.ended = true;
    this.wake();
  }

  private wake(): void {
    for (const w of [...this.waiters]) {
      if (w.test()) {
        this.waiters.delete(w);
        w.resolve();
      }
    }
  }

  /** Resolves when `test` holds (checked on each arrival), rejects after `timeoutMs`. */
  until(test: () => boolean, timeoutMs: number, what = 'condition'): Promise<void> {
    if (test()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        test,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`${what} not seen within ${timeoutMs} ms (${this.events.length} events, ended=${this.ended})`));
      }, timeoutMs);
      this.waiters.add(w);
    });
  }

  /** The `n`-th event (0-based), waiting for it up to `timeoutMs`. */
  async event(n: number, timeoutMs = 5000): Promise<SseEvent> {
    await this.until(() => this.events.length > n, timeoutMs, `event #${n}`);
    return this.events[n]!;
  }

  /** The first event from index `from` on that satisfies `test`. */
  async eventWhere(test: (e: SseEvent) => boolean, timeoutMs = 5000, from = 0): Promise<SseEvent> {
    const find = () => this.events.slice(from).find(test);
    await this.until(() => find() !== undefined, timeoutMs, 'matching event');
    return find()!;
  }

  close(): void {
    this.req.destroy();
  }
}

/**
 * An EventSource-like client: on the end of a stream (or a failed connect)
 * it waits `retry` ms and connects again with `Last-Event-ID`. Every
 * connection is kept in `connections`; `events` holds the events of all of
 * them, in order.
 */
export class ReconnectingSse {
  readonly connections: SseStream[] = [];
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(
    readonly url: string,
    private readonly defaultRetryMs = 3000,
  ) {
    this.done = this.loop();
  }

  get events(): SseEvent[] {
    return this.connections.flatMap((c) => c.events);
  }

  private async loop(): Promise<void> {
    let retry = this.defaultRetryMs;
    let lastId: string | undefined;
    while (!this.stopped) {
      try {
        const s = await SseStream.open(this.url, { headers: lastId !== undefined ? { 'last-event-id': lastId } : {} });
        this.connections.push(s);
        await s.until(() => s.ended || this.stopped, 24 * 3600_000);
        retry = s.retry ?? retry;
        lastId = s.events.at(-1)?.id ?? lastId;
        s.close();
      } catch {
        /* refused or reset: retry */
      }
      if (!this.stopped) await sleep(retry);
    }
  }

  /** Resolves when `test` holds, polling every 50 ms; rejects after `timeoutMs`. */
  async until(test: () => boolean, timeoutMs: number, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!test()) {
      if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms (${this.connections.length} connections, ${this.events.length} events)`);
      await sleep(50);
    }
  }

  async close(): Promise<void> {
    this.stopped = true;
    for (const c of this.connections) c.close();
    await this.done;
  }
}
